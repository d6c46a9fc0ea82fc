#!/usr/bin/env python3
"""translate.py IN.cu OUT.cpp - a kernel file as plain C++ for the CPU
emulator: the two CUDA C++ constructs a C++ compiler cannot parse become
calls into it (a launch `k<<<grid, block, smem, stream>>>(args);` becomes
`emu_launch(k, grid, block, smem, stream, args);`, and `extern __shared__ T
name[];` a pointer to the block's dynamic shared memory). Inline PTX must
stay in kernels/ptx.cuh, which the emulator replaces."""
import re
import sys

src = open(sys.argv[1]).read()
out = re.sub(r'extern __shared__ (?:__align__\(\d+\) )?(\w+) (\w+)\[\];', r'\1 *\2 = (\1 *)emu_dynamic_smem();', src)
out = re.sub(r'(\w+(?:<\w+>)?)<<<(.*?)>>>\((.*?)\);', r'emu_launch(\1, \2, \3);', out, flags=re.S)
for left, why in (('<<<', 'a launch'), ('extern __shared__', 'dynamic shared memory'), ('asm(', 'inline PTX'),
                  ('asm volatile', 'inline PTX')):
    if left in out:
        sys.exit(f"{sys.argv[1]}: {why} the emulator cannot translate ('{left}'); keep PTX in kernels/ptx.cuh")
open(sys.argv[2], 'w').write(out)
