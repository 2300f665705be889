"""Model Studio's "同步調用" Python example for wan2.7-image-pro, unchanged but for the base URL line:
the base URL comes from DASHSCOPE_HTTP_BASE_URL, which the official SDK reads."""

import json
import os

from dashscope.aigc.image_generation import ImageGeneration
from dashscope.api_entities.dashscope_response import Message

api_key = os.getenv("DASHSCOPE_API_KEY")

message = Message(
    role="user",
    # 支援本地檔案 如 "image": "file://car.png"
    content=[
        {"text": "把圖2的塗鴉噴繪在圖1的汽車上"},
        {"image": "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20251229/pjeqdf/car.webp"},
        {"image": "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20251229/xsunlm/paint.webp"},
    ],
)
print("----sync call, please wait a moment----")
rsp = ImageGeneration.call(
    model="wan2.7-image-pro", api_key=api_key, messages=[message], watermark=False, n=1, size="2K"
)

print(rsp)
print("RESULT " + json.dumps({"status_code": rsp.status_code, "output": rsp.output, "usage": rsp.usage}, default=str))
