/*
 * plan.c - what rm_load asks of the tp engine, from rm_params, the model
 * and, for a pack, what the pack holds.
 */
#include "parallel/tp.h"

#include <string.h>

#include "cuda_module.h"
#include "pack/pack.h"

rm_status rm_tp_cuda_collective(const rm_tp_plan *plan, rm_tp_collective *out, rm_err *err) {
    const rm_tp_layout *L = &plan->layout;
    int repeats = 0, all_same = 1;
    for (int i = 1; i < L->n_local; i++) {
        all_same &= rm_tp_gpu_of(plan, i) == rm_tp_gpu_of(plan, 0);
        for (int k = 0; k < i; k++) repeats += rm_tp_gpu_of(plan, i) == rm_tp_gpu_of(plan, k);
    }
    if ((L->n_local > 1 && all_same) || (L->tp == 1 && !plan->tp_asked)) {
        *out = RM_TP_COMM_DEVICE_THREADS;
        return RM_OK;
    }
    if (repeats)
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.gpus: some of this process's %d ranks share a GPU and "
                       "others do not; put every rank on its own GPU (NCCL) or all of them on one (the in-process "
                       "group)", L->n_local);
    *out = RM_TP_COMM_NCCL;
    return RM_OK;
}

/* rm_tp_plan.comm_create for the CUDA engine: the collective
 * rm_tp_cuda_collective picks, from the module. */
static rm_status cuda_comms(rm_comm **out, const rm_tp_plan *plan, rm_err *err) {
    rm_tp_collective kind;
    rm_status st = rm_tp_cuda_collective(plan, &kind, err);
    if (st) return st;
    const rm_cuda_module *mod = NULL;
    if ((st = rm_cuda_module_get(&mod, NULL, err))) return st;
    if (kind == RM_TP_COMM_DEVICE_THREADS) {
        if (!mod->comm_device)
            return rm_fail(err, RM_ERR_UNSUPPORTED, "the CUDA module has no in-process collective");
        return rm_comm_threads_create(out, plan->layout.n_local, plan->timeout_s, mod->comm_device, err);
    }
    if (!mod->comm_nccl_create) return rm_fail(err, RM_ERR_UNSUPPORTED, "the CUDA module has no NCCL collective");
    return mod->comm_nccl_create(out, plan, err);
}

rm_status rm_tp_plan_make(rm_tp_plan *plan, const rm_params *p, const rm_config *cfg, const rm_model_weights *mw,
                          const struct rm_pack *pack, rm_device device, const rm_engine_ops *inner, rm_err *err) {
    memset(plan, 0, sizeof *plan);
    int tp = p->tp;
    rm_status st;
    if (tp < 0 || tp > 4096) return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.tp %d: 0 to 4096 ranks", tp);
    if (pack && (st = rm_pack_check_request(pack, tp, p->dtype, device, &tp, err))) return st;
    if ((st = rm_shard_check(cfg, tp, err))) return st;
    if (!(p->tp_timeout_s >= 0))
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.tp_timeout_s %g is negative", p->tp_timeout_s);
    if (p->gpus && (p->n_gpus == 0 || p->n_gpus > 4096))
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.gpus is set with n_gpus %zu", p->n_gpus);
    for (size_t i = 0; p->gpus && i < p->n_gpus; i++)
        if (p->gpus[i] < 0) return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.gpus[%zu] is %d", i, p->gpus[i]);
    if ((st = rm_tp_layout_resolve(&plan->layout, tp, p->rank, p->world_size, p->local_rank, err))) return st;
    plan->inner = inner;
    plan->source = (rm_shard_source){cfg, pack ? NULL : mw, pack};
    plan->gpus = p->gpus;
    plan->n_gpus = p->gpus ? p->n_gpus : 0;
    plan->timeout_s = p->tp_timeout_s;
    if (p->has_nccl_id != 0 && p->has_nccl_id != 1)
        return rm_fail(err, RM_ERR_INVALID_ARG, "rm_params.has_nccl_id is %d (0 or 1)", p->has_nccl_id);
    plan->comm_ctx = p->has_nccl_id ? p->nccl_id : NULL;   /* read while rm_load runs: the engine is made there */
    plan->tp_asked = p->tp != 0;
    if (device == RM_DEVICE_CUDA) plan->comm_create = cuda_comms;
    return RM_OK;
}
