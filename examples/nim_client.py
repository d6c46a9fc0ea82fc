from openai import OpenAI
client = OpenAI(base_url="http://localhost:8000/v1", api_key="none")
messages = [{"role": "user", "content": "I am going to Paris, what should I see?"},
            {"role": "assistant", "content": "Ah, Paris, the City of Light! There are so many amazing things to see and do in this beautiful city ..."}]
response = client.chat.completions.create(model="tiny-llama3-seqcls", messages=messages, stream=False)
response_content = response.choices[0].message.content
reward_pairs = [pair.split(":") for pair in response_content.split(",")]
print({attribute: float(score) for attribute, score in reward_pairs})
