"""Model Studio's local-file form ("image": "file://car.png"): the SDK uploads it through the temporary-upload
flow (getPolicy, form POST, oss:// URL with X-DashScope-OssResourceResolve) and calls wan2.7-image-pro.
Usage: python studio_local_file_upload.py IMAGE_PATH"""

import json
import os
import sys

from dashscope.aigc.image_generation import ImageGeneration
from dashscope.api_entities.dashscope_response import Message

api_key = os.getenv("DASHSCOPE_API_KEY")
message = Message(role="user", content=[{"text": "把圖1的汽車變成紅色"}, {"image": "file://" + sys.argv[1]}])
rsp = ImageGeneration.call(
    model="wan2.7-image-pro", api_key=api_key, messages=[message], watermark=False, n=1, size="1K"
)
print(rsp)
print("RESULT " + json.dumps({"status_code": rsp.status_code, "output": rsp.output, "usage": rsp.usage}, default=str))
