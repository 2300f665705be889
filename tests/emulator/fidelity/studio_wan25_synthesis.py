"""Model Studio's wan2.5-i2i-preview example: ImageSynthesis.call (async task + wait inside the SDK), with
public URLs, saving the results the way that example does (requests.get on each result URL)."""

import json
import os
from http import HTTPStatus
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

import requests
from dashscope import ImageSynthesis

api_key = os.getenv("DASHSCOPE_API_KEY")

image_url_1 = "https://img.alicdn.com/imgextra/i3/O1CN0157XGE51l6iL9441yX_!!6000000004770-49-tps-1104-1472.webp"
image_url_2 = "https://img.alicdn.com/imgextra/i3/O1CN01SfG4J41UYn9WNt4X1_!!6000000002530-49-tps-1696-960.webp"

print("----sync call, please wait a moment----")
rsp = ImageSynthesis.call(
    api_key=api_key,
    model="wan2.5-i2i-preview",
    prompt="將圖1中的鬧鐘放置到圖2的餐桌的花瓶旁邊位置",
    images=[image_url_1, image_url_2],
    negative_prompt="",
    n=1,
    prompt_extend=True,
    watermark=False,
    seed=12345,
)
print(f"response: {rsp}")
saved = []
if rsp.status_code == HTTPStatus.OK:
    for result in rsp.output.results:
        file_name = PurePosixPath(unquote(urlparse(result.url).path)).parts[-1]
        with open(f"./{file_name}", "wb+") as f:
            f.write(requests.get(result.url).content)
        saved.append(file_name)
else:
    print(f"sync_call Failed, status_code: {rsp.status_code}, code: {rsp.code}, message: {rsp.message}")
print("RESULT " + json.dumps({"status_code": rsp.status_code, "output": rsp.output, "saved": saved}, default=str))
