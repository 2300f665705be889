"""Model Studio's "非同步呼叫" Python example for wan2.7-image-pro (async_call + wait, then fetch), with the base
URL from DASHSCOPE_HTTP_BASE_URL."""

import json
import os
from http import HTTPStatus

from dashscope.aigc.image_generation import ImageGeneration
from dashscope.api_entities.dashscope_response import Message

api_key = os.getenv("DASHSCOPE_API_KEY")


def create_async_task():
    print("Creating async task...")
    message = Message(
        role="user",
        content=[
            {"text": "把圖2的塗鴉噴繪在圖1的汽車上"},
            {"image": "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20251229/pjeqdf/car.webp"},
            {"image": "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20251229/xsunlm/paint.webp"},
        ],
    )
    response = ImageGeneration.async_call(
        model="wan2.7-image-pro", api_key=api_key, messages=[message], watermark=False, n=1, size="2K"
    )
    if response.status_code == 200:
        print("Task created successfully:", response)
        return response
    raise Exception(f"Failed to create task: {response.code} - {response.message}")


def wait_for_completion(task_response):
    print("Waiting for task completion...")
    status = ImageGeneration.wait(task=task_response, api_key=api_key)
    if status.output.task_status == "SUCCEEDED":
        print("Task succeeded!")
        print("Response:", status)
        return status
    raise Exception(f"Task failed with status: {status.output.task_status}")


def fetch_task_status(task):
    print("Fetching task status...")
    status = ImageGeneration.fetch(task=task, api_key=api_key)
    if status.status_code == HTTPStatus.OK:
        print("Task status:", status.output.task_status)
    return status


if __name__ == "__main__":
    task = create_async_task()
    done = wait_for_completion(task)
    fetched = fetch_task_status(task)
    print(
        "RESULT "
        + json.dumps({"output": done.output, "usage": done.usage, "fetched": fetched.output.task_status}, default=str)
    )
