"""The SDK's sample for wan2.6-image interleaved text and images over the synchronous endpoint, streamed
(``stream=True``: the SDK sends ``X-DashScope-SSE: enable`` and no ``parameters.stream``), with the base URL from
DASHSCOPE_HTTP_BASE_URL."""

import json
import os

from dashscope.aigc.image_generation import ImageGeneration
from dashscope.api_entities.dashscope_response import Message

api_key = os.getenv("DASHSCOPE_API_KEY")

message = Message(role="user", content=[{"text": "給我一個3張圖辣椒炒肉教程"}])
print("----sync call with stream, please wait a moment----")
stream = ImageGeneration.call(
    model="wan2.6-image",
    api_key=api_key,
    messages=[message],
    stream=True,
    enable_interleave=True,
    max_images=3,
    size="1280*1280",
)
events = []
for rsp in stream:
    print(rsp)
    events.append({"status_code": rsp.status_code, "code": rsp.code, "message": rsp.message, "output": rsp.output})
print("RESULT " + json.dumps({"events": events}, default=str))
