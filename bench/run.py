"""wan-image-mcp benchmarks, side by side with the official dashscope SDK, against the emulator.

    python bench/run.py [--runs 5] [--out bench/results.md] [--quick]

Medians over repeated runs; the machine is described at the top of the table. See bench/README.md.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from PIL import Image

from wan_image_mcp.emulator import EmulatorConfig
from wan_image_mcp.emulator.serve import RunningEmulator

KEY = "sk-bench"


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def server_params(emulator: RunningEmulator, folder: Path, **extra: str) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "WAN_MCP_"))}
    env.update(
        DASHSCOPE_HTTP_BASE_URL=emulator.base_url,
        DASHSCOPE_API_KEY=KEY,
        WAN_MCP_OUTPUT_DIR=str(folder / "out"),
        WAN_MCP_DB=str(folder / "journal.sqlite3"),
        WAN_MCP_ALLOWED_DIRS=str(folder),
        WAN_MCP_MAX_IMAGES_PER_CALL="12",
        **extra,
    )
    return StdioServerParameters(command=sys.executable, args=["-m", "wan_image_mcp"], env=env, cwd=folder)


def photo(path: Path, size: tuple[int, int], *, seed: int, noise: bool = False, quality: int = 90) -> Path:
    """A photo-like JPEG (gradient with grain), or incompressible noise as PNG for the large-file case."""
    rng = random.Random(seed)
    if noise:
        Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3)).save(path, "PNG", compress_level=1)
        return path
    base = Image.linear_gradient("L").resize(size).convert("RGB")  # pyright: ignore[reportUnknownMemberType]
    grain = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    Image.blend(base, grain, 0.15 if quality < 100 else 0.9).save(path, "JPEG", quality=quality)
    return path


# --- 1. startup ---------------------------------------------------------------------------------------------


FLOOR = Path(__file__).parent / "floor.py"
"""The SDK's own minimal ``MCPServer`` with one tool: what any stdio server on this mcp pays to answer."""


def startup(emulator: RunningEmulator, folder: Path, runs: int) -> dict[str, float]:
    """Spawn -> answered ``tools/list`` over stdio, ours and the SDK's floor (``floor.py``) taken in turn for
    ``runs`` rounds, so the machine's noise falls on both alike; medians of each, and the ratio of the medians."""
    floor = StdioServerParameters(command=sys.executable, args=[str(FLOOR)], env=server_params(emulator, folder).env)

    async def to_tools_list(params: StdioServerParameters) -> float:
        started = time.perf_counter()
        async with Client(params) as client:
            await client.list_tools()
            return time.perf_counter() - started

    # Measure a start after the first, where Python has cached our bytecode (pip did it for the SDK at
    # install; an editable install under PYTHONDONTWRITEBYTECODE would otherwise compile on every start).
    compileall.compile_dir(Path(__file__).parent.parent / "server" / "wan_image_mcp", quiet=1)
    compileall.compile_file(FLOOR, quiet=1)
    ours: list[float] = []
    floors: list[float] = []
    anyio.run(to_tools_list, server_params(emulator, folder))  # not counted: the OS's file cache warmed
    anyio.run(to_tools_list, floor)
    for _ in range(runs):
        ours.append(anyio.run(to_tools_list, server_params(emulator, folder)))
        floors.append(anyio.run(to_tools_list, floor))

    def import_sdk() -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import dashscope"], check=True)
        return time.perf_counter() - started

    startup_s, floor_s = statistics.median(ours), statistics.median(floors)
    ratios = sorted(mine / theirs for mine, theirs in zip(ours, floors, strict=True))  # round by round
    quartiles = statistics.quantiles(ratios, n=4) if runs > 1 else [ratios[0]] * 3
    return {
        "startup_s": startup_s,
        "floor_s": floor_s,
        "floor_ratio": startup_s / floor_s,
        "floor_ratio_q1": quartiles[0],
        "floor_ratio_q3": quartiles[2],
        "startup_runs": runs,
        "sdk_import_s": median_of(runs, import_sdk),
    }


def startup_row(f: dict[str, Any]) -> tuple[str, str, str]:
    return (
        "1. startup to first `tools/list` (stdio)",
        f"{1000 * f['startup_s']:.0f} ms ({f['floor_ratio']:.2f}× the SDK's floor; middle half of rounds "
        f"{f['floor_ratio_q1']:.2f}–{f['floor_ratio_q3']:.2f}×)",
        f"the SDK's minimal one-tool `MCPServer`: {1000 * f['floor_s']:.0f} ms (medians of {f['startup_runs']} "
        f"interleaved rounds); `import dashscope`: {f['sdk_import_s']:.2f} s",
    )


# --- 2 and 3. an edit through MCP vs the SDK ------------------------------------------------------------------


def prompt_for(images: list[Path]) -> str:
    """The two-image edit of Model Studio's examples, or a one-image edit: a prompt never names an image it is not given."""
    return "把圖2的塗鴉噴繪在圖1的汽車上" if len(images) >= 2 else "把圖1的汽車噴成藍色"


def sdk_edit(base_url: str, images: list[Path], folder: Path) -> float:
    """The official SDK's ImageGeneration.call with file:// images, then downloading the result."""
    from dashscope.aigc.image_generation import ImageGeneration
    from dashscope.api_entities.dashscope_response import Message

    import dashscope
    import requests

    dashscope.base_http_api_url = base_url
    started = time.perf_counter()
    content: list[dict[str, str]] = [
        {"text": prompt_for(images)},
        *({"image": f"file://{p}"} for p in images),
    ]
    call: Any = ImageGeneration.call  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType] - a loosely typed SDK
    response: Any = call(
        model="wan2.7-image-pro", api_key=KEY, messages=[Message(role="user", content=content)], n=1, size="2K"
    )
    assert response.status_code == 200, response
    for choice in response.output["choices"]:
        for item in choice["message"]["content"]:
            (folder / "sdk.png").write_bytes(requests.get(item["image"], timeout=60).content)
    return time.perf_counter() - started


def sdk_worker(base_url: str, folder: Path) -> None:
    """``run.py --sdk-worker URL FOLDER``: one SDK edit per line of image paths (JSON) read, its seconds printed."""
    import dashscope  # noqa: F401  # pyright: ignore[reportUnusedImport] - loaded before the first edit, as in a running program

    for line in sys.stdin:
        print(sdk_edit(base_url, [Path(p) for p in json.loads(line)], folder), flush=True)


class SdkProcess:
    """The SDK in a process of its own, as a user's program is: never inside the API's process. (In the bench's
    own process it would share an interpreter with the emulator, which no real caller does, and skip the
    cross-process hops our server pays: the probe that found this measured it 5-10 ms faster there.)"""

    def __init__(self, emulator: RunningEmulator, folder: Path) -> None:
        command = [sys.executable, __file__, "--sdk-worker", emulator.base_url, str(folder)]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def edit(self, images: list[Path]) -> float:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps([str(p) for p in images]) + "\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the SDK process ended (exit code {self._process.wait(timeout=10)})")
        return float(answer)

    async def edit_async(self, images: list[Path]) -> float:
        return await anyio.to_thread.run_sync(self.edit, images)

    def __enter__(self) -> SdkProcess:
        return self

    def __exit__(self, *_: object) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=30)


def ours_edit(client: Client, images: list[Path]) -> Callable[[], Awaitable[float]]:
    async def run() -> float:
        started = time.perf_counter()
        result = await client.call_tool(
            "edit_image", {"prompt": prompt_for(images), "images": [str(p) for p in images], "size": "2K"}
        )
        assert not result.is_error, result.content
        return time.perf_counter() - started

    return run


def uploaded(emulator: RunningEmulator, since: int) -> int:
    return sum(r.size for r in emulator.state.requests[since:] if r.method == "POST" and r.path == "/oss")


# --- 4. memory --------------------------------------------------------------------------------------------------


def server_pid() -> int:
    """The wan_image_mcp server this process spawned (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"wan_image_mcp" in cmdline:
            return int(entry.name)
    raise RuntimeError("the server process was not found")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (Linux /proc)."""
    fields = (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


async def peak_rss(emulator: RunningEmulator, folder: Path, images: list[Path]) -> dict[str, float]:
    async with Client(server_params(emulator, folder, WAN_MCP_HARVEST="0")) as client:
        await client.list_tools()
        pid = server_pid()
        idle = memory_kb(pid, "VmRSS")
        result = await client.call_tool(
            "edit_image", {"prompt": "fuse all nine", "images": [str(p) for p in images], "size": "1K"}
        )
        assert not result.is_error, result.content
        peak = memory_kb(pid, "VmHWM")
    return {"idle_mb": idle / 1024, "peak_mb": peak / 1024}


# --- 7. nine very large PNGs ---------------------------------------------------------------------------------


def large_png(path: Path, side: int, *, seed: int) -> Path:
    """A photo-like PNG: gradients, shapes and a coarse grain (9 px cells), ~0.06 bytes a pixel at 9000 px."""
    from PIL import ImageDraw

    rng = random.Random(seed)
    size = (side, side)
    base = Image.linear_gradient("L").resize(size)  # pyright: ignore[reportUnknownMemberType]
    flipped = base.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    image = Image.merge("RGB", (base, base.transpose(Image.Transpose.ROTATE_90), flipped))
    draw = ImageDraw.Draw(image)
    for _ in range(200):
        x, y = rng.randrange(side), rng.randrange(side)
        extent = (x, y, x + rng.randrange(side // 180 + 1, side // 6), y + rng.randrange(side // 180 + 1, side // 6))
        draw.ellipse(extent, fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    cells = side // 9
    grain = Image.frombytes("L", (cells, cells), rng.randbytes(cells * cells))
    grain = grain.resize(size, Image.Resampling.NEAREST)  # pyright: ignore[reportUnknownMemberType]
    Image.blend(image, Image.merge("RGB", (grain, grain, grain)), 0.1).save(path, "PNG", compress_level=1)
    return path


async def large_images(emulator: RunningEmulator, folder: Path, images: list[Path]) -> dict[str, float]:
    """``inspect_image`` and ``edit_image`` on the same images, each in a fresh server: seconds, and peak RSS over
    the server's idle RSS (Linux /proc)."""
    figures: dict[str, float] = {}
    refs = [str(p) for p in images]
    calls = {
        "inspect": ("inspect_image", {"images": refs}),
        "edit": ("edit_image", {"prompt": "fuse all nine", "images": refs, "size": "1K"}),
    }
    for name, (tool, arguments) in calls.items():
        async with Client(server_params(emulator, folder, WAN_MCP_HARVEST="0")) as client:
            await client.list_tools()
            pid = server_pid()
            idle = memory_kb(pid, "VmRSS")
            mark = len(emulator.state.renders)
            cpu = cpu_seconds(pid)
            started = time.perf_counter()
            result = await client.call_tool(tool, arguments)
            figures[f"{name}_s"] = time.perf_counter() - started
            figures[f"{name}_cpu_s"] = cpu_seconds(pid) - cpu  # the server's own, whatever else loads the machine
            figures[f"{name}_render_s"] = sum(emulator.state.renders[mark:])  # the emulator's share
            assert not result.is_error, result.content
            figures[f"{name}_mb"] = (memory_kb(pid, "VmHWM") - idle) / 1024
            seconds, cpu, mb = figures[f"{name}_s"], figures[f"{name}_cpu_s"], figures[f"{name}_mb"]
            print(f"7. {tool}: {seconds:.1f} s ({cpu:.1f} s CPU), {mb:.0f} MB over idle", file=sys.stderr)
    return figures


# --- 5. many tasks at once ------------------------------------------------------------------------------------


def completion_lags(emulator: RunningEmulator, journal: Path, ids: list[str]) -> list[float]:
    """Seconds from each task's completion (created + the emulator's latency) to its images being saved."""
    import sqlite3
    from contextlib import closing

    state = emulator.state
    with closing(sqlite3.connect(journal)) as db:
        saved = dict(db.execute("SELECT task_id, saved_at FROM tasks WHERE saved_at IS NOT NULL").fetchall())
    return [saved[i] - (state.tasks[i].created + state.duration(state.tasks[i])) for i in ids if i in saved]


async def many_tasks(client: Client, emulator: RunningEmulator, count: int, journal: Path) -> dict[str, float]:
    before = len(emulator.state.requests)
    started = time.perf_counter()
    ids: list[str] = []

    async def submit() -> None:
        result = await client.call_tool("submit_task", {"prompt": "one of many", "size": "1K"})
        assert result.structured_content is not None, result.content
        ids.append(result.structured_content["task_id"])

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(submit)
    with anyio.fail_after(600):
        while True:
            listed = await client.call_tool("list_tasks", {"status": "SUCCEEDED", "page_size": 50})
            saved = 0
            page = 1
            while listed.structured_content and listed.structured_content["tasks"]:
                saved += sum(1 for t in listed.structured_content["tasks"] if t["images"] and t["task_id"] in ids)
                page += 1
                listed = await client.call_tool("list_tasks", {"status": "SUCCEEDED", "page_size": 50, "page": page})
            if saved == count:
                break
            await anyio.sleep(0.25)
    wall = time.perf_counter() - started
    polls = [
        r.at for r in emulator.state.requests[before:] if r.method == "GET" and r.path.startswith("/api/v1/tasks/")
    ]
    busiest = max((sum(1 for t in polls if start <= t < start + 1) for start in polls), default=0)
    lags = completion_lags(emulator, journal, ids)
    return {
        "wall_s": wall,
        "polls_per_task": len(polls) / count,
        "max_queries_in_1s": busiest,
        "lag_median_s": statistics.median(lags),
        "lag_max_s": max(lags),
    }


# --- 8. two replicas on one PostgreSQL journal -----------------------------------------------------------------


async def replicas(emulator: RunningEmulator, folder: Path, journal_url: str, count: int) -> dict[str, float]:
    """``count`` concurrent tasks submitted half through each of two servers that share a PostgreSQL journal and an
    output folder (harvesters on): seconds to every image on disk, the busiest second of task queries (each task's
    and the list's) as the emulator saw them from both, and how often each result was downloaded."""
    before = len(emulator.state.requests)
    params = server_params(emulator, folder, WAN_MCP_HARVEST="1")
    params.env = {**(params.env or {}), "WAN_MCP_DB": journal_url}  # in place of the folder's SQLite file
    started = time.perf_counter()
    async with Client(params) as first, Client(params) as second:
        ids: list[str] = []

        async def submit(client: Client) -> None:
            result = await client.call_tool("submit_task", {"prompt": "one of many, two replicas", "size": "1K"})
            assert result.structured_content is not None, result.content
            ids.append(result.structured_content["task_id"])

        async with anyio.create_task_group() as group:
            for i in range(count):
                group.start_soon(submit, (first, second)[i % 2])
        with anyio.fail_after(600):  # the server's files, by task id, in the shared output folder
            while True:
                if len({p.name.split("_")[-2] for p in (folder / "out").glob("*.png")} & set(ids)) == count:
                    break
                await anyio.sleep(0.25)
    wall = time.perf_counter() - started
    queries = [
        r.at for r in emulator.state.requests[before:] if r.method == "GET" and r.path.startswith("/api/v1/tasks")
    ]
    fetched = Counter(r.path for r in emulator.state.requests[before:] if r.path.startswith("/results/"))
    return {
        "wall_s": wall,
        "max_queries_in_1s": max((sum(1 for t in queries if s <= t < s + 1) for s in queries), default=0),
        "queries_per_task": len(queries) / count,
        "downloads": len(fetched),
        "most_downloads_of_one": max(fetched.values(), default=0),
    }


def measure_replicas(args: argparse.Namespace, folder: Path) -> str:
    """Measure 8 (``--only-replicas``): a real PostgreSQL (Debian's binaries, as the tests start it)."""
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from tests.support.postgres_server import PostgresServer

    latency = 1.0 if args.quick else 3.0
    config = EmulatorConfig(api_keys=frozenset({KEY}), polls_to_finish=1, latency=latency)
    with PostgresServer() as postgres, RunningEmulator(config) as emulator:
        (folder / "replicas").mkdir()
        f = anyio.run(replicas, emulator, folder / "replicas", postgres.database(), args.tasks)
    row = (
        f"8. two replicas on one PostgreSQL journal, {args.tasks} concurrent tasks ({latency:g} s each, all ending together)",
        f"{f['wall_s']:.1f} s to every image on disk; busiest second {f['max_queries_in_1s']:.0f} task queries across "
        f"both; {f['queries_per_task']:.1f} queries/task; {f['downloads']:.0f} images downloaded, at most "
        f"{f['most_downloads_of_one']:.0f}× each",
        "—",
    )
    return table([row], args)


# --- 9. fairness between tenants ------------------------------------------------------------------------------


async def fairness(emulator: RunningEmulator, folder: Path, count: int) -> dict[str, float]:
    """``count`` tasks of one tenant (all at once), then one of another, through one server's service with its
    harvester on (real time, SQLite): seconds from the lone task's submission to its first query by id and to its
    image on disk, with how long the task itself ran."""
    import httpx2
    from pydantic import SecretStr

    from wan_image_mcp.core.journal import AsyncJournal, Journal, TaskRow, Tenant
    from wan_image_mcp.core.requests.declarations import EditArgs, EditParams
    from wan_image_mcp.core.tasks.harvest import Harvester
    from wan_image_mcp.settings import Settings
    from wan_image_mcp.wiring import build_service

    settings = Settings(
        api_key=SecretStr(KEY),
        base_url=emulator.base_url,
        output_dir=folder / "out",
        journal_path=folder / "journal.sqlite3",
        harvest=True,
    )
    journal = AsyncJournal(Journal(settings.journal_location))
    busy, lone = Tenant("https://login.example", "busy"), Tenant("https://login.example", "lone")
    args = EditArgs(prompt="one of many", images=[], model="wan2.7-image", params=EditParams(size="1K"))

    async def lone_task_saved() -> TaskRow:
        saved: list[TaskRow] = []
        async with httpx2.AsyncClient(timeout=30) as http, anyio.create_task_group() as group:
            service = build_service(settings, http, journal)
            group.start_soon(Harvester(service).run)

            async def submit(tenant: Tenant) -> str | None:
                return (await service.submit(args, tenant=tenant)).task_id

            async with anyio.create_task_group() as many:
                for _ in range(count):
                    many.start_soon(submit, busy)
            task_id = await submit(lone)
            assert task_id is not None
            with anyio.fail_after(300):
                while True:
                    row = await journal.get(task_id)
                    if row is not None and row.saved_at is not None:
                        saved.append(row)
                        break
                    await anyio.sleep(0.02)
            group.cancel_scope.cancel()
        return saved[0]

    try:
        row = await lone_task_saved()
    finally:
        journal.sync.close()
    assert row.task_id is not None and row.saved_at is not None
    task_id, state = row.task_id, emulator.state
    first = min(r.at for r in state.requests if r.path == f"/api/v1/tasks/{task_id}")
    return {
        "first_query_s": first - row.created_at,
        "on_disk_s": row.saved_at - row.created_at,
        "task_s": state.duration(state.tasks[task_id]),
    }


def measure_fairness(args: argparse.Namespace, folder: Path) -> str:
    """Measure 9 (``--only-fairness``): one tenant with ``--tasks`` running tasks (200 by default here), another
    with one, submitted right after; the lone task's lag."""
    count = args.tasks if args.tasks != 100 else 200  # --tasks's default is measure 5's
    latency = 1.0 if args.quick else 4.0
    config = EmulatorConfig(api_keys=frozenset({KEY}), polls_to_finish=1, latency=latency)
    runs: list[dict[str, float]] = []
    for run in range(1 if args.quick else args.runs):
        with RunningEmulator(config) as emulator:
            (folder / f"fair-{run}").mkdir()
            runs.append(anyio.run(fairness, emulator, folder / f"fair-{run}", count))
    f = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    row = (
        f"9. two tenants, {count} tasks vs 1 submitted right after ({latency:g} s each): the lone task's lag",
        f"first query by id {f['first_query_s']:.2f} s after its submission, image on disk {f['on_disk_s']:.2f} s "
        f"after (the task itself ran {f['task_s']:.2f} s); worst of {len(runs)} runs: "
        f"{max(r['on_disk_s'] for r in runs):.2f} s to disk",
        "—",
    )
    return table([row], args)


# --- the run -------------------------------------------------------------------------------------------------


async def edits(
    emulator: RunningEmulator,
    sdk: SdkProcess,
    rounds: int,
    two: list[Path],
    setup: Callable[[int], None] = lambda _: None,
    **ours: Callable[[], Awaitable[float]],
) -> dict[str, Any]:
    """Measures 2 and 2b: our edits and the SDK's taken in turn, so machine noise falls on all alike. The ratio
    is the median of each round's own ratio, with the quartiles of those ratios for the noise. Each edit is also
    taken net of the emulator's rendering (the same work whoever asks, and most of the noise): what remains is
    each side's own cost. That is only meaningful at zero latency, where rendering happens within the edit."""
    timed = {**ours, "sdk": lambda: sdk.edit_async(two)}  # in this order in each round
    times: dict[str, list[float]] = {name: [] for name in timed}
    net: dict[str, list[float]] = {name: [] for name in timed}
    for round_ in range(rounds):
        setup(round_)
        for name, edit in timed.items():
            mark = len(emulator.state.renders)
            spent = await edit()
            times[name].append(spent)
            net[name].append(spent - sum(emulator.state.renders[mark:]))
    figures: dict[str, Any] = {}
    for name in timed:
        figures |= {
            f"edit_{name}_s": statistics.median(times[name]),
            f"edit_{name}_net_s": statistics.median(net[name]),
        }
    for name in ours:
        for kind, values in (("", times), ("_net", net)):
            ratios = [a / b for a, b in zip(values[name], values["sdk"], strict=True)]
            quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
            figures[f"edit_{name}{kind}_ratio"] = statistics.median(ratios)
            figures[f"edit_{name}{kind}_iqr"] = (quartiles[0], quartiles[2])
    return figures


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"
    )


async def measure_edits(
    emulator: RunningEmulator,
    sdk: SdkProcess,
    client: Client,
    bare: Client,
    args: argparse.Namespace,
    two: list[Path],
    bigs: list[Path],
) -> dict[str, Any]:
    """Measures 2, 2b and 3: ``client`` returns previews to the agent, ``bare`` does not (like for like)."""
    runs = args.runs
    # Each side's first edit is not counted (imports on first use, connections, our first upload of the two
    # photos); ours is reported on its own.
    figures: dict[str, Any] = {"edit_first_s": await ours_edit(bare, two)()}
    await ours_edit(client, two)()
    await sdk.edit_async(two)
    figures |= await edits(emulator, sdk, 3 * runs, two, ours=ours_edit(client, two), bare=ours_edit(bare, two))

    times: dict[str, list[float]] = {"first": [], "second": []}
    for big in bigs:  # a new photo each run: a first edit happens once per photo
        edit_big = ours_edit(bare, [big])
        for attempt, spent in times.items():
            mark = len(emulator.state.requests)
            spent.append(await edit_big())
            figures[f"big_{attempt}_uploaded"] = uploaded(emulator, mark)
    figures |= {f"big_{attempt}_s": statistics.median(spent) for attempt, spent in times.items()}
    mark = len(emulator.state.requests)
    figures["big_sdk_s"] = statistics.median([await sdk.edit_async([big]) for big in bigs for _ in range(2)])
    figures["big_sdk_uploaded"] = uploaded(emulator, mark) / (2 * len(bigs))

    # 2b. The same edit when the task takes as long as real ones: the SDK's synchronous call answers at the end;
    # ours learns of it from the harvester's list (once a second) or its own next query. Each round's tasks last a
    # fraction of a second longer, so the list's phase falls anywhere in its second.
    def lasting(round_: int) -> None:
        emulator.state.config.latency = args.task_seconds + round_ / runs

    slow = await edits(emulator, sdk, runs, two, lasting, bare=ours_edit(bare, two))
    emulator.state.config.latency = 0.0
    return figures | {f"slow_{name.removeprefix('edit_')}": value for name, value in slow.items()}


TOOLS_LIST_TARGETS = (15_000, 9_000)
"""Measure 6's targets: the whole ``tools/list`` answer, and what a model is shown of it (bytes, compact JSON)."""


def tools_list_sizes(listed: dict[str, Any]) -> dict[str, int]:
    """Measure 6: the whole ``tools/list`` answer, and what a model is shown of it (each tool's name, title,
    description and input schema), as compact JSON."""

    def compact(value: object) -> int:
        return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())

    shown = [{k: t[k] for k in ("name", "title", "description", "inputSchema") if k in t} for t in listed["tools"]]
    return {"tools_list_bytes": compact(listed), "tools_shown_bytes": compact(shown)}


async def measure_tools_list(emulator: RunningEmulator, folder: Path) -> dict[str, int]:
    """Measure 6 as a user's first session sees it: a client without MCP Apps, the server's default settings (the
    per-call cap of 4, no folder set), over stdio; with the size of the server instructions beside it."""
    params = server_params(emulator, folder)
    assert params.env is not None
    defaults = {k: v for k, v in params.env.items() if k not in ("WAN_MCP_MAX_IMAGES_PER_CALL", "WAN_MCP_ALLOWED_DIRS")}
    async with Client(params.model_copy(update={"env": defaults})) as client:
        listed = (await client.list_tools()).model_dump(mode="json", by_alias=True, exclude_none=True)
        instructions = len((client.instructions or "").encode())
    return tools_list_sizes(listed) | {"instructions_bytes": instructions}


def tools_list_row(f: dict[str, Any]) -> tuple[str, str, str]:
    whole, shown = TOOLS_LIST_TARGETS
    return (
        "6. `tools/list` size (compact JSON; default settings, a client without MCP Apps)",
        f"{f['tools_list_bytes']:,} bytes in all (target ≤ {whole:,}); {f['tools_shown_bytes']:,} bytes shown to "
        f"the model (names, titles, descriptions, input schemas; target ≤ {shown:,}); the server instructions "
        f"{f['instructions_bytes']:,} bytes",
        "—",
    )


async def session_measures(
    emulator: RunningEmulator, folder: Path, args: argparse.Namespace, two: list[Path], bigs: list[Path]
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    figures |= await measure_tools_list(emulator, folder)
    async with Client(server_params(emulator, folder)) as client:
        bare_params = server_params(emulator, folder, WAN_MCP_PREVIEWS="0")  # like for like
        with SdkProcess(emulator, folder) as sdk:
            async with Client(bare_params) as bare:
                figures |= await measure_edits(emulator, sdk, client, bare, args, two, bigs)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--task-seconds", type=float, default=12.0, help="task length for measure 2b")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results.md"))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="check the harness: small photos and 1-2 s tasks (the figures mean nothing)",
    )
    parser.add_argument("--only-startup", action="store_true", help="run measure 1 (with its floor) alone, print it")
    parser.add_argument("--only-tools-list", action="store_true", help="run measure 6 alone and print its row")
    parser.add_argument("--only-large", action="store_true", help="run measure 7 alone and print its row")
    parser.add_argument("--only-replicas", action="store_true", help="run measure 8 (PostgreSQL) alone, print its row")
    parser.add_argument("--only-fairness", action="store_true", help="run measure 9 (two tenants) alone, print its row")
    parser.add_argument(
        "--only-decode-peaks", action="store_true", help="run measure 10 (one decode's peak RSS per format), print it"
    )
    parser.add_argument("--side", type=int, help="measure 10 at this square side, not the largest admitted")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="wan-bench-"))
    if args.only_fairness:
        print(measure_fairness(args, folder), end="")
        return
    if args.only_replicas:
        print(measure_replicas(args, folder), end="")
        return
    if args.only_decode_peaks:
        print(measure_decode_peaks(args, folder), end="")
        return
    if args.only_startup:
        with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}))) as emulator:
            print(table([startup_row(startup(emulator, folder, args.runs))], args), end="")
        return
    if args.only_tools_list:
        with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}))) as emulator:
            print(table([tools_list_row(anyio.run(measure_tools_list, emulator, folder))], args), end="")
        return
    if args.only_large:
        with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}), polls_to_finish=1)) as emulator:
            print(table([large_row(measure_large(emulator, folder, args))], args), end="")
        return
    two = [photo(folder / "car.jpg", (2048, 1536), seed=1), photo(folder / "paint.jpg", (2048, 1536), seed=2)]
    bigs = [photo(folder / f"big-{i}.png", (2300, 2200), seed=3 + i, noise=True) for i in range(args.runs)]  # ~15 MB
    with RunningEmulator(EmulatorConfig(api_keys=frozenset({KEY}), polls_to_finish=1)) as emulator:
        figures: dict[str, Any] = dict(startup(emulator, folder, args.runs))
        figures |= anyio.run(session_measures, emulator, folder, args, two, bigs)
        (folder / "rss").mkdir()
        large = (1200, 900) if args.quick else (3600, 2700)
        nine = [photo(folder / "rss" / f"large-{i}.jpg", large, seed=10 + i, quality=100) for i in range(9)]
        figures["nine_mb"] = statistics.mean(p.stat().st_size for p in nine) / 1_000_000
        figures["rss"] = anyio.run(peak_rss, emulator, folder / "rss", nine)
        figures |= measure_large(emulator, folder, args)
        # Tasks take real time here: what matters is polling and harvesting. First all finish together (the
        # worst case), then spread over 9 s as real ones are (DashScope's published wan2.7 samples took 12-21 s).
        latency, most = figures["task_s"] = (1.0, 1.0) if args.quick else (3.0, 9.0)
        for name, spread in (("many", 0.0), ("spread", most)):
            emulator.state.config.latency, emulator.state.config.latency_spread = latency, spread

            async def many(name: str = name) -> dict[str, float]:
                async with Client(server_params(emulator, folder / name, WAN_MCP_HARVEST="1")) as client:
                    return await many_tasks(client, emulator, args.tasks, folder / name / "journal.sqlite3")

            (folder / name).mkdir()
            figures[name] = anyio.run(many)
    results = render(figures, bigs[0].stat().st_size, args)
    Path(args.out).write_text(results, encoding="utf-8")
    print(results)


def large_row(f: dict[str, Any]) -> tuple[str, str, str]:
    return (
        f"7. nine {f['large_side']}×{f['large_side']} PNGs ({f['large_mb']:.0f} MB each)",
        f"`inspect_image` {f['large']['inspect_s']:.1f} s ({f['large']['inspect_cpu_s']:.1f} s of the server's CPU), "
        f"{f['large']['inspect_mb']:.0f} MB over idle; `edit_image` {f['large']['edit_s']:.1f} s "
        f"({f['large']['edit_cpu_s']:.1f} s of the server's CPU; the emulator rendering the result "
        f"{f['large']['edit_render_s']:.1f} s), {f['large']['edit_mb']:.0f} MB over idle",
        "—",
    )


# --- 10. one decode's peak, per format ---------------------------------------------------------------------


def _gradient(side: int) -> Image.Image:
    """A grey gradient with a diagonal in it: fast to make at any size, and compressing to a tiny file."""
    grey = Image.linear_gradient("L").resize((side, side))  # pyright: ignore[reportUnknownMemberType]
    return Image.blend(grey, grey.transpose(Image.Transpose.ROTATE_90), 0.5)


def _rgb(side: int) -> Image.Image:
    grey = _gradient(side)
    inverted = grey.point([255 - v for v in range(256)])  # pyright: ignore[reportUnknownMemberType]
    return Image.merge("RGB", (grey, grey.transpose(Image.Transpose.FLIP_TOP_BOTTOM), inverted))


def _palette(side: int, bits: int) -> Image.Image:
    levels = 1 << bits
    image = _gradient(side).point([v * levels // 256 for v in range(256)]).convert("P")  # pyright: ignore[reportUnknownMemberType]
    image.putpalette([channel for i in range(levels) for channel in (i * 255 // (levels - 1), 40, 200)])
    return image


def _grey_16(side: int) -> Image.Image:
    wide = _gradient(side).convert("I").point(lambda v: v * 257)  # pyright: ignore[reportUnknownMemberType]
    return wide.convert("I;16")


DECODE_FORMATS: dict[str, tuple[str, Callable[[int], Image.Image], dict[str, Any]]] = {
    "JPEG": ("jpg", _rgb, {"quality": 90}),
    "JPEG progressive, 4:4:4": ("jpg", _rgb, {"quality": 90, "progressive": True, "subsampling": 0}),
    "PNG 8-bit RGB": ("png", _rgb, {"compress_level": 1}),
    "PNG 16-bit grey": ("png", _grey_16, {"compress_level": 1}),
    "PNG palette (8-bit)": ("png", lambda side: _palette(side, 8), {"compress_level": 1}),
    "PNG 1-bit palette": ("png", lambda side: _palette(side, 1), {"bits": 1, "compress_level": 1}),
    "PNG 1-bit (mode 1)": ("png", lambda side: _gradient(side).convert("1"), {"compress_level": 1}),
    "GIF": ("gif", lambda side: _palette(side, 8), {}),
    "WebP lossless": ("webp", _rgb, {"lossless": True, "quality": 0, "method": 0}),
    "WebP lossy": ("webp", _rgb, {"quality": 80, "method": 0}),
    "TIFF (LZW)": ("tif", _rgb, {"compression": "tiff_lzw"}),
}
"""Measure 10's formats: how each file is made (extension, pixels at a side, Pillow's save options)."""


def decode_peak_child(paths: list[Path]) -> None:
    """In a fresh process (``run.py --decode-peak-child FILE...``): each image prepared as an edit prepares it,
    and the peak RSS over the RSS just before (Linux ``/proc``; the peak reset by ``clear_refs``), a JSON line
    each."""
    from wan_image_mcp.core.errors import InvalidRequest
    from wan_image_mcp.core.images.inputs import prepare_image
    from wan_image_mcp.core.specs import SPECS

    limits = SPECS["wan2.7-image-pro"].image
    Image.init()  # every plugin imported before the idle figure
    for path in paths:
        estimate = decode_estimate(path, limits)
        Path("/proc/self/clear_refs").write_text("5")
        idle = memory_kb(os.getpid(), "VmRSS")
        try:
            prepared = prepare_image(str(path), 1, limits, path.parent)
            outcome = f"sent as {prepared.format}, {prepared.width}×{prepared.height}"
        except InvalidRequest as exc:
            outcome = "refused: " + exc.problems[0].message
        peak_mb = (memory_kb(os.getpid(), "VmHWM") - idle) * 1024 / 1e6
        print(json.dumps({"mb": peak_mb, "estimate_mb": estimate / 1e6, "outcome": outcome}), flush=True)


def decode_estimate(path: Path, limits: Any) -> int:
    """What the server's decode budget counts for preparing ``path`` (0 where it has no estimate: an older server)."""
    try:
        from wan_image_mcp.core.errors import InvalidRequest
        from wan_image_mcp.core.images.conforming import conform_bytes, plan
        from wan_image_mcp.core.images.decoding import open_image
    except ImportError:
        return 0
    with path.open("rb") as file:
        image, orientation = open_image(file, str(path), lambda message: InvalidRequest([]))
        with image:
            todo = plan(image, orientation, path.stat().st_size, limits, lambda message: InvalidRequest([]))
            return conform_bytes(image, orientation, todo).peak


def largest_admitted_side(fmt: str, folder: Path) -> int:
    """The largest square the server admits for a file of ``fmt`` (made small here and asked of the core)."""
    from wan_image_mcp.core.errors import InvalidRequest
    from wan_image_mcp.core.images.conforming import largest_square
    from wan_image_mcp.core.images.decoding import open_image
    from wan_image_mcp.core.specs import SPECS

    extension, pixels, options = DECODE_FORMATS[fmt]
    probe = folder / f"probe.{extension}"
    pixels(512).save(probe, **options)
    with probe.open("rb") as file:
        image = open_image(file, str(probe), lambda message: InvalidRequest([]))[0]  # as the server opens it
        with image:
            return largest_square(image, SPECS["wan2.7-image-pro"].image)


def measure_decode_peaks(args: argparse.Namespace, folder: Path) -> str:
    """Measure 10 (``--only-decode-peaks``): per format, the peak RSS of preparing one image as an edit does, in
    a fresh process each, at the largest square the server admits for the format (or at ``--side``). With
    ``--quick``, at most 1000 px and all in one process (to check the harness)."""
    from wan_image_mcp.core.images.decoding import DecodeBudget
    from wan_image_mcp.core.specs import SPECS

    made: list[tuple[str, int, Path]] = []
    for number, (fmt, (extension, pixels, options)) in enumerate(DECODE_FORMATS.items()):
        side = args.side or largest_admitted_side(fmt, folder)
        if args.quick:
            side = min(side, 1000)
        path = folder / f"peak-{number}.{extension}"
        pixels(side).save(path, **options)
        for _ in range(0 if args.side else 5):  # the largest side was found for a small file: the file counts too
            if decode_estimate(path, SPECS["wan2.7-image-pro"].image) <= DecodeBudget.BYTES:
                break
            side -= max(1, side // 200)
            pixels(side).save(path, **options)
        made.append((fmt, side, path))
    runs = [made] if args.quick else [[one] for one in made]
    lines = [
        "| format | size | file | peak RSS over idle | the budget's estimate | outcome |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        command = [sys.executable, __file__, "--decode-peak-child", *(str(path) for _, _, path in run)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        for (fmt, side, path), line in zip(run, done.stdout.splitlines()[-len(run) :], strict=True):
            figures = json.loads(line)
            estimate = f"{figures['estimate_mb']:,.0f} MB" if figures["estimate_mb"] else "—"
            cells = [fmt, f"{side}×{side}", f"{path.stat().st_size / 1000:,.0f} KB", f"{figures['mb']:,.0f} MB"]
            lines.append(f"| {' | '.join(cells)} | {estimate} | {figures['outcome']} |")
            path.unlink()
    return "\n".join(lines) + "\n"


def table(rows: list[tuple[str, str, str]], args: argparse.Namespace) -> str:
    lines = [
        f"Machine: {machine()}. Emulator at zero latency unless noted; medians of {args.runs} runs.",
        "",
        "| measure | wan-image-mcp | official SDK |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"


def measure_large(emulator: RunningEmulator, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Measure 7: nine PNGs over the 8000 px side limit (1200 px with --quick), made here and deleted after."""
    (folder / "large").mkdir()
    side = 1200 if args.quick else 9000
    pngs = [large_png(folder / "large" / f"large-{i}.png", side, seed=20 + i) for i in range(9)]
    figures: dict[str, Any] = {"large_side": side}
    figures["large_mb"] = statistics.mean(p.stat().st_size for p in pngs) / 1_000_000
    figures["large"] = anyio.run(large_images, emulator, folder / "large", pngs)
    for png in pngs:
        png.unlink()
    return figures


def render(f: dict[str, Any], big_bytes: int, args: argparse.Namespace) -> str:
    mb = 1_000_000
    rows = [
        startup_row(f),
        (
            "2. edit, two local 2K photos",
            f"{f['edit_bare_s']:.2f} s ({f['edit_ours_s']:.2f} s with the preview image returned to the agent)",
            f"SDK call + download: {f['edit_sdk_s']:.2f} s (ratio {f['edit_bare_ratio']:.2f}×, middle half of rounds {f['edit_bare_iqr'][0]:.2f}–{f['edit_bare_iqr'][1]:.2f}×; {f['edit_ours_ratio']:.2f}× with the preview)",
        ),
        (
            "2. the same, net of the emulator's rendering (each side's own cost)",
            f"{1000 * f['edit_bare_net_s']:.0f} ms ({1000 * f['edit_ours_net_s']:.0f} ms with the preview); a new server's first edit {f['edit_first_s']:.2f} s in all",
            f"SDK: {1000 * f['edit_sdk_net_s']:.0f} ms (ratio {f['edit_bare_net_ratio']:.2f}×, middle half of rounds {f['edit_bare_net_iqr'][0]:.2f}–{f['edit_bare_net_iqr'][1]:.2f}×; {f['edit_ours_net_ratio']:.2f}× with the preview)",
        ),
        (
            f"2b. the same edit, each task taking {args.task_seconds:g}–{args.task_seconds + 1:g} s",
            f"{f['slow_bare_s']:.2f} s",
            f"SDK call + download: {f['slow_sdk_s']:.2f} s (ratio {f['slow_bare_ratio']:.3f}×)",
        ),
        (
            f"3. same {big_bytes / mb:.1f} MB photo edited twice: bytes uploaded",
            f"{f['big_first_uploaded'] / mb:.1f} MB, then {f['big_second_uploaded'] / mb:.1f} MB ({f['big_first_s']:.2f} s, {f['big_second_s']:.2f} s)",
            f"SDK uploads every time: {f['big_sdk_uploaded'] / mb:.1f} MB ({f['big_sdk_s']:.2f} s)",
        ),
        (
            f"4. peak RSS, 9 × {f['nine_mb']:.1f} MB JPEG edit",
            f"{f['rss']['peak_mb'] - f['rss']['idle_mb']:.0f} MB over idle ({f['rss']['idle_mb']:.0f} MB idle, {f['rss']['peak_mb']:.0f} MB peak)",
            "—",
        ),
        *(
            (
                f"5. {args.tasks} concurrent tasks ({label})",
                f"{m['wall_s']:.1f} s to all images on disk; {m['polls_per_task']:.1f} queries/task; busiest second {m['max_queries_in_1s']:.0f} queries; images on disk {m['lag_median_s']:.2f} s (median), {m['lag_max_s']:.2f} s (max) after completion",
                "—",
            )
            for label, m in (
                (f"{f['task_s'][0]:g} s each, all ending together", f["many"]),
                (f"{f['task_s'][0]:g}-{sum(f['task_s']):g} s each", f["spread"]),
            )
        ),
        tools_list_row(f),
        large_row(f),
    ]
    return table(rows, args)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sdk-worker"]:
        sdk_worker(sys.argv[2], Path(sys.argv[3]))
    elif sys.argv[1:2] == ["--decode-peak-child"]:
        decode_peak_child([Path(arg) for arg in sys.argv[2:]])
    else:
        main()
