"""Side-by-side routing benchmark: OSRM (the anchor) vs hexcity vs pandana, in one run.

Measures, on one OSM extract (Heidelberg by default) and in one process tree:

* preprocessing wall time, CPU time and peak RSS of the build (child processes, via ``wait4``);
* ``/route`` latency p50/p90 over HTTP (sequential, keep-alive);
* ``/table`` 100x100 and 1000x1000 over HTTP (median over repeats);
* in-process many-to-many tables (hexcity ``RoutingEngine.table``, pandana ``shortest_path_lengths``);
* server RSS after the run;
* a rough agreement check of route durations against OSRM (reported, never asserted).

Every ratio is hexcity / OSRM measured in the same run on the same machine.
Run ``.venv/bin/python benchmarks/routing_vs_osrm.py --help`` and see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "benchmarks"
WORK_DIR = BENCH_DIR / ".work"
DEFAULT_PBF = REPO / "data" / "osm" / "heidelberg.osm.pbf"
OSRM_ANCHOR_SCRIPT = REPO.parent / "shared" / "tools" / "osrm-anchor"
HOST = "127.0.0.1"  # never anything else

# Car-routable highway classes (points are sampled from nodes of these ways; pandana's graph uses them).
# Speeds (km/h) roughly follow OSRM's car.lua defaults; maxspeed, where tagged, wins (x0.8).
CAR_SPEEDS_KMH: dict[str, float] = {
    "motorway": 90.0,
    "motorway_link": 45.0,
    "trunk": 85.0,
    "trunk_link": 40.0,
    "primary": 65.0,
    "primary_link": 30.0,
    "secondary": 55.0,
    "secondary_link": 25.0,
    "tertiary": 40.0,
    "tertiary_link": 20.0,
    "unclassified": 25.0,
    "residential": 25.0,
    "living_street": 10.0,
    "service": 15.0,
}
MAXSPEED_FACTOR = 0.8
IMPLIED_ONEWAY = {"motorway", "motorway_link"}
BLOCKED_ACCESS = {"no", "private"}
PANDANA_UNREACHABLE = 4294967.295  # pandana's sentinel (uint32 max / 1000)


def log(msg: str) -> None:
    """Progress goes to stderr; stdout only gets the final markdown table."""
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Machine / versions
# --------------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total_gib = float("nan")
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total_gib = int(line.split()[1]) / 1024 / 1024
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "ram_gib": round(mem_total_gib, 1),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def sha256_prefix(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Process helpers: measured children, servers, RSS
# --------------------------------------------------------------------------------------------------


@dataclass
class ProcResult:
    cmd: list[str]
    returncode: int
    wall_s: float
    cpu_s: float
    max_rss_mib: float
    log_path: str


def kill_group(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """Terminate the process group started by ``proc`` (SIGTERM, then SIGKILL)."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of an exited leader
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_measured(
    cmd: Sequence[str],
    log_path: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 1800.0,
) -> ProcResult:
    """Run a child in its own process group; wall time plus ``wait4`` rusage (peak RSS, CPU).

    ``wait4`` gives exactly what ``/usr/bin/time -v`` reports (it uses the same call): the peak
    RSS of the largest process in the child's tree, and user+sys CPU of the child and its
    waited-for descendants.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        timer = threading.Timer(timeout_s, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        except BaseException:
            kill_group(proc, grace_s=2.0)
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # nothing of ours may outlive the step
    return ProcResult(
        cmd=list(cmd),
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=ru.ru_utime + ru.ru_stime,
        max_rss_mib=ru.ru_maxrss / 1024,  # KiB on Linux
        log_path=str(log_path),
    )


def tail(path: str | Path, n: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def tree_rss_mib(pid: int) -> float:
    """RSS of a process plus all its descendants (MiB)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_info().rss
    return total / 1024 / 1024


def dir_size_mib(paths: Sequence[Path]) -> float:
    total = 0
    for p in paths:
        if p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            total += p.stat().st_size
    return total / 1024 / 1024


class KeepAliveClient:
    """Minimal keep-alive HTTP/1.1 GET client (http.client): lowest client overhead per request."""

    def __init__(self, port: int, timeout_s: float = 600.0, headers: dict[str, str] | None = None) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self.headers = headers or {}
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)

    def _once(self, path: str) -> tuple[int, bytes, float]:
        t0 = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        resp = self.conn.getresponse()
        body = resp.read()
        return resp.status, body, time.perf_counter() - t0

    def get(self, path: str) -> tuple[int, bytes, float]:
        """Status, body, seconds from sending the request to having read the whole body."""
        try:
            return self._once(path)
        except (http.client.HTTPException, ConnectionError, BrokenPipeError):
            # idle keep-alive connection closed by the server: reconnect and retry once
            self.conn.close()
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout_s)
            return self._once(path)

    def close(self) -> None:
        self.conn.close()


@contextlib.contextmanager
def running_server(
    name: str,
    cmd: Sequence[str],
    port: int,
    ready_path: str,
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    timeout_s: float = 300.0,
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """Start a server in its own process group, wait until ``ready_path`` answers 200, always kill it.

    Yields the process and the seconds from spawn to ready.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = log_path.open("wb")
    log(f"{name}: starting {' '.join(cmd)}")
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = t0 + timeout_s
        ready_s = float("nan")
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} before ready:\n{tail(log_path)}")
            try:
                conn = http.client.HTTPConnection(HOST, port, timeout=5)
                conn.request("GET", ready_path)
                status = conn.getresponse().status
                conn.close()
            except (OSError, http.client.HTTPException):
                status = 0
            if status == 200:
                ready_s = time.perf_counter() - t0
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{name} not ready after {timeout_s:.0f}s:\n{tail(log_path)}")
        log(f"{name}: ready after {ready_s:.2f}s (pid {proc.pid}, port {port})")
        yield proc, ready_s
    finally:
        kill_group(proc)
        out.close()
        log(f"{name}: stopped")


# --------------------------------------------------------------------------------------------------
# The car network from the pbf (points for everyone; pandana's graph)
# --------------------------------------------------------------------------------------------------


def parse_maxspeed(value: str | None) -> float | None:
    if not value:
        return None
    v = value.strip().lower()
    named = {"de:urban": 50.0, "de:rural": 100.0, "de:living_street": 7.0, "walk": 7.0, "de:motorway": 130.0}
    if v in named:
        return named[v]
    m = re.match(r"^(\d+(?:\.\d+)?)\s*(mph)?$", v)
    if not m:
        return None
    speed = float(m.group(1))
    return speed * 1.609344 if m.group(2) else speed


@dataclass
class CarGraph:
    """Directed car graph: nodes are OSM way nodes, edges consecutive way-node pairs."""

    node_ids: np.ndarray  # int64 OSM ids, sorted unique
    lon: np.ndarray
    lat: np.ndarray
    src: np.ndarray  # int64 indices into node_ids
    dst: np.ndarray
    length_m: np.ndarray
    time_s: np.ndarray


def read_car_graph(pbf: Path) -> CarGraph:
    """Read car-routable ways (one pyosmium pass with node locations) into a directed graph."""
    import osmium

    refs_all: list[int] = []
    lons_all: list[float] = []
    lats_all: list[float] = []
    seg_a: list[int] = []  # positions in refs_all
    seg_fwd: list[bool] = []
    seg_bwd: list[bool] = []
    seg_speed: list[float] = []

    class Handler(osmium.SimpleHandler):  # type: ignore[misc]
        def way(self, w: Any) -> None:
            tags = w.tags
            hw = tags.get("highway")
            if hw not in CAR_SPEEDS_KMH or tags.get("area") == "yes":
                return
            motor = tags.get("motor_vehicle") or tags.get("motorcar")
            if motor in BLOCKED_ACCESS or (tags.get("access") in BLOCKED_ACCESS and motor not in {"yes"}):
                return
            oneway = tags.get("oneway", "")
            if oneway in {"reversible", "alternating"}:
                return
            implied = hw in IMPLIED_ONEWAY or tags.get("junction") in {"roundabout", "circular"}
            fwd, bwd = True, True
            if oneway in {"yes", "true", "1"} or (implied and oneway != "no"):
                bwd = False
            elif oneway == "-1":
                fwd = False
            maxspeed = parse_maxspeed(tags.get("maxspeed"))
            speed = maxspeed * MAXSPEED_FACTOR if maxspeed else CAR_SPEEDS_KMH[hw]
            prev_pos = -1
            for n in w.nodes:
                loc = n.location
                if not loc.valid():
                    prev_pos = -1
                    continue
                pos = len(refs_all)
                refs_all.append(n.ref)
                lons_all.append(loc.lon)
                lats_all.append(loc.lat)
                if prev_pos >= 0:
                    seg_a.append(prev_pos)
                    seg_fwd.append(fwd)
                    seg_bwd.append(bwd)
                    seg_speed.append(max(speed, 1.0))
                prev_pos = pos

    Handler().apply_file(str(pbf), locations=True)

    refs = np.asarray(refs_all, dtype=np.int64)
    lons = np.asarray(lons_all, dtype=np.float64)
    lats = np.asarray(lats_all, dtype=np.float64)
    node_ids, first_pos, inverse = np.unique(refs, return_index=True, return_inverse=True)
    a_pos = np.asarray(seg_a, dtype=np.int64)
    b_pos = a_pos + 1
    a_idx, b_idx = inverse[a_pos], inverse[b_pos]
    length = haversine_m_vec(lats[a_pos], lons[a_pos], lats[b_pos], lons[b_pos])
    t = length / (np.asarray(seg_speed) / 3.6)
    fwd = np.asarray(seg_fwd, dtype=bool)
    bwd = np.asarray(seg_bwd, dtype=bool)
    src = np.concatenate([a_idx[fwd], b_idx[bwd]])
    dst = np.concatenate([b_idx[fwd], a_idx[bwd]])
    keep = src != dst
    return CarGraph(
        node_ids=node_ids,
        lon=lons[first_pos],
        lat=lats[first_pos],
        src=src[keep],
        dst=dst[keep],
        length_m=np.concatenate([length[fwd], length[bwd]])[keep],
        time_s=np.concatenate([t[fwd], t[bwd]])[keep],
    )


def haversine_m_vec(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat, dlon = p2 - p1, np.radians(lon2 - lon1)
    h = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return np.asarray(2 * 6_371_008.8 * np.arcsin(np.minimum(1.0, np.sqrt(h))))


def largest_scc(graph: CarGraph) -> CarGraph:
    """Restrict the graph to its largest strongly connected component (every pair is routable)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(graph.node_ids)
    adj = csr_matrix((np.ones(len(graph.src), dtype=np.int8), (graph.src, graph.dst)), shape=(n, n))
    _, labels = connected_components(adj, directed=True, connection="strong")
    biggest = np.bincount(labels).argmax()
    keep_node = labels == biggest
    new_index = np.full(n, -1, dtype=np.int64)
    new_index[keep_node] = np.arange(int(keep_node.sum()))
    keep_edge = keep_node[graph.src] & keep_node[graph.dst]
    return CarGraph(
        node_ids=graph.node_ids[keep_node],
        lon=graph.lon[keep_node],
        lat=graph.lat[keep_node],
        src=new_index[graph.src[keep_edge]],
        dst=new_index[graph.dst[keep_edge]],
        length_m=graph.length_m[keep_edge],
        time_s=graph.time_s[keep_edge],
    )


@dataclass
class Points:
    """Deterministic benchmark points, WGS84 rounded to 6 decimals; identical for every engine."""

    table_lat: np.ndarray  # (n_table,)
    table_lon: np.ndarray
    route_lat: np.ndarray  # (n_pairs, 2): origin, destination
    route_lon: np.ndarray

    def save(self, path: Path) -> None:
        np.savez(path, **asdict(self))

    @classmethod
    def load(cls, path: Path) -> Points:
        with np.load(path) as z:
            return cls(**{k: z[k] for k in ("table_lat", "table_lon", "route_lat", "route_lon")})


def sample_points(pbf: Path, seed: int, n_table: int, n_pairs: int) -> tuple[Points, dict[str, Any]]:
    """Sample OSM nodes of car-routable ways (largest strongly connected component) with a seeded rng."""
    t0 = time.perf_counter()
    full = read_car_graph(pbf)
    scc = largest_scc(full)
    n = len(scc.node_ids)
    rng = np.random.default_rng(seed)
    table_idx = rng.choice(n, size=min(n_table, n), replace=False)
    route_idx = rng.choice(n, size=(n_pairs, 2), replace=n < 2 * n_pairs)
    info = {
        "car_nodes": len(full.node_ids),
        "car_edges": len(full.src),
        "scc_nodes": n,
        "scc_edges": len(scc.src),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    pts = Points(
        table_lat=np.round(scc.lat[table_idx], 6),
        table_lon=np.round(scc.lon[table_idx], 6),
        route_lat=np.round(scc.lat[route_idx], 6),
        route_lon=np.round(scc.lon[route_idx], 6),
    )
    return pts, info


def coords_path(lons: Sequence[float], lats: Sequence[float]) -> str:
    """OSRM order: lon,lat;lon,lat (6 decimals keep a 1000-point URL near 20 kB)."""
    return ";".join(f"{lo:.6f},{la:.6f}" for lo, la in zip(lons, lats, strict=True))


# --------------------------------------------------------------------------------------------------
# HTTP measurements (shared by OSRM and hexcity: both speak OSRM v5)
# --------------------------------------------------------------------------------------------------


def percentile_ms(samples_s: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples_s), q) * 1000) if len(samples_s) else float("nan")


def measure_http_routes(client: KeepAliveClient, pts: Points, warmup: int = 10) -> dict[str, Any]:
    """Sequential /route for every pair: latency p50/p90/mean and the route durations/distances."""
    paths = [
        "/route/v1/driving/"
        + coords_path(pts.route_lon[i], pts.route_lat[i])
        + "?overview=false&steps=false&alternatives=false"
        for i in range(len(pts.route_lat))
    ]
    for p in paths[:warmup]:
        client.get(p)
    lat_s: list[float] = []
    durations: list[float] = []
    distances: list[float] = []
    errors = 0
    for p in paths:
        status, body, secs = client.get(p)
        lat_s.append(secs)
        dur, dist = math.nan, math.nan
        if status == 200:
            doc = json.loads(body)
            if doc.get("code") == "Ok" and doc.get("routes"):
                dur = float(doc["routes"][0]["duration"])
                dist = float(doc["routes"][0]["distance"])
        else:
            errors += 1
        durations.append(dur)
        distances.append(dist)
    return {
        "n": len(paths),
        "p50_ms": percentile_ms(lat_s, 50),
        "p90_ms": percentile_ms(lat_s, 90),
        "mean_ms": float(np.mean(lat_s) * 1000),
        "http_errors": errors,
        "no_route": int(np.isnan(durations).sum()),
        "durations_s": durations,
        "distances_m": distances,
    }


def table_matrix(body: bytes, key: str = "durations") -> np.ndarray:
    doc = json.loads(body)
    if doc.get("code") != "Ok":
        raise RuntimeError(f"table answered code={doc.get('code')}: {doc.get('message')}")
    return np.array([[math.nan if v is None else v for v in row] for row in doc[key]], dtype=np.float64)


def measure_http_table(
    client: KeepAliveClient, pts: Points, n: int, repeats: int, annotations: str
) -> dict[str, Any]:
    """n x n /table (all-to-all on the first n table points): one warm-up, then ``repeats`` timed."""
    path = f"/table/v1/driving/{coords_path(pts.table_lon[:n], pts.table_lat[:n])}?annotations={annotations}"
    status, body, warm_s = client.get(path)
    if status != 200:
        raise RuntimeError(f"/table {n}x{n} -> HTTP {status}: {body[:300]!r}")
    durations = table_matrix(body)
    if durations.shape != (n, n):
        raise RuntimeError(f"/table {n}x{n} returned shape {durations.shape}")
    times: list[float] = []
    for _ in range(repeats):
        status, body, secs = client.get(path)
        if status != 200:
            raise RuntimeError(f"/table {n}x{n} -> HTTP {status}")
        times.append(secs)
    return {
        "n": n,
        "repeats": repeats,
        "median_ms": float(np.median(times) * 1000),
        "min_ms": float(np.min(times) * 1000),
        "warmup_ms": warm_s * 1000,
        "url_bytes": len(path),
        "response_bytes": len(body),
        "unreachable_cells": int(np.isnan(durations).sum()),
        "_durations": durations,  # stripped before JSON; used for the agreement check
    }


def measure_http_server(
    client: KeepAliveClient, pts: Points, args: argparse.Namespace, name: str
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    log(f"{name}: /route x {len(pts.route_lat)} (sequential, keep-alive)")
    res["route"] = measure_http_routes(client, pts)
    log(f"{name}: route p50 {res['route']['p50_ms']:.2f} ms, p90 {res['route']['p90_ms']:.2f} ms")
    variants = [("", args.table_annotations)]
    if not args.no_duration_only and args.table_annotations != "duration":
        variants.append(("_duration_only", "duration"))
    for n, reps in ((100, args.repeats_100), (1000, args.repeats_1000)):
        if (n == 1000 and args.skip_1000) or n > len(pts.table_lat):
            continue
        for suffix, annot in variants:
            key = f"table_{n}{suffix}"
            log(f"{name}: /table {n}x{n} annotations={annot} x {reps}")
            try:
                res[key] = measure_http_table(client, pts, n, reps, annot)
                log(f"{name}: /table {n}x{n} annotations={annot} median {res[key]['median_ms']:.1f} ms")
            except (RuntimeError, OSError, http.client.HTTPException, ValueError) as exc:
                res[key] = {"error": str(exc)[:500]}
                log(f"{name}: /table {n}x{n} annotations={annot} FAILED: {exc}")
    return res


# --------------------------------------------------------------------------------------------------
# OSRM (anchor)
# --------------------------------------------------------------------------------------------------


def find_osrm(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    if not OSRM_ANCHOR_SCRIPT.exists():
        raise FileNotFoundError(f"{OSRM_ANCHOR_SCRIPT} not found (pass --osrm-dir)")
    out = subprocess.run([str(OSRM_ANCHOR_SCRIPT)], check=True, capture_output=True, text=True, timeout=900)
    return Path(out.stdout.strip().splitlines()[-1])


def osrm_build(osrm_dir: Path, pbf: Path, work: Path) -> dict[str, Any]:
    """osrm-extract (car.lua) + osrm-contract: wall/CPU time summed, peak RSS = max of the two."""
    work.mkdir(parents=True, exist_ok=True)
    for f in work.iterdir():
        if f.is_file():
            f.unlink()
    local_pbf = work / pbf.name
    shutil.copyfile(pbf, local_pbf)
    base = work / (pbf.name.removesuffix(".osm.pbf") + ".osrm")
    profile = osrm_dir / "share" / "profiles" / "car.lua"
    steps = {
        "extract": [str(osrm_dir / "bin" / "osrm-extract"), "-p", str(profile), str(local_pbf)],
        "contract": [str(osrm_dir / "bin" / "osrm-contract"), str(base)],
    }
    results: dict[str, ProcResult] = {}
    for step, cmd in steps.items():
        log(f"osrm: {step}")
        r = run_measured(cmd, work / f"{step}.log", cwd=work)
        if r.returncode != 0:
            raise RuntimeError(f"osrm-{step} failed ({r.returncode}):\n{tail(r.log_path)}")
        log(f"osrm: {step} {r.wall_s:.2f}s, peak RSS {r.max_rss_mib:.0f} MiB")
        results[step] = r
    artefacts = [f for f in work.iterdir() if f.name.startswith(base.name)]
    return {
        "wall_s": sum(r.wall_s for r in results.values()),
        "cpu_s": sum(r.cpu_s for r in results.values()),
        "peak_rss_mib": max(r.max_rss_mib for r in results.values()),
        "steps": {k: asdict(v) for k, v in results.items()},
        "disk_mib": dir_size_mib(artefacts),
        "base": str(base),
    }


def osrm_version(osrm_dir: Path) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            [str(osrm_dir / "bin" / "osrm-routed"), "--version"],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return out.stdout.strip() or out.stderr.strip()
    return "unknown"


def run_osrm(args: argparse.Namespace, pts: Points, pbf: Path) -> dict[str, Any]:
    osrm_dir = find_osrm(args.osrm_dir)
    res: dict[str, Any] = {"version": osrm_version(osrm_dir), "dir": str(osrm_dir)}
    work = WORK_DIR / "osrm"
    res["build"] = osrm_build(osrm_dir, pbf, work)
    port = free_port()
    cmd = [
        str(osrm_dir / "bin" / "osrm-routed"),
        "--algorithm", "ch",
        "--ip", HOST,
        "--port", str(port),
        "--threads", str(args.osrm_threads),
        "--max-table-size", "1000",
        res["build"]["base"],
    ]  # fmt: skip
    ready = f"/nearest/v1/driving/{pts.table_lon[0]:.6f},{pts.table_lat[0]:.6f}"
    with running_server("osrm-routed", cmd, port, ready, work / "routed.log") as (proc, ready_s):
        res["ready_s"] = ready_s
        res["rss_ready_mib"] = tree_rss_mib(proc.pid)
        client = KeepAliveClient(port)
        try:
            res["http"] = measure_http_server(client, pts, args, "osrm")
        finally:
            client.close()
        res["rss_after_mib"] = tree_rss_mib(proc.pid)
        log(f"osrm: server RSS after run {res['rss_after_mib']:.0f} MiB")
    return res


# --------------------------------------------------------------------------------------------------
# hexcity
# --------------------------------------------------------------------------------------------------


def hexcity_cli(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    cli = Path(sys.executable).parent / "hexcity"
    if not cli.exists():
        found = shutil.which("hexcity")
        if not found:
            raise FileNotFoundError(f"hexcity CLI not found next to {sys.executable} (pip install -e .)")
        cli = Path(found)
    return cli


def hexcity_build(cli: Path, pbf: Path, out_dir: Path) -> dict[str, Any]:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(cli), "routing", "build", str(pbf), "--profile", "car", "--out", str(out_dir)]
    log("hexcity: routing build")
    r = run_measured(cmd, out_dir.parent / "build.log")
    if r.returncode != 0:
        raise RuntimeError(f"hexcity routing build failed ({r.returncode}):\n{tail(r.log_path)}")
    log(f"hexcity: build {r.wall_s:.2f}s, peak RSS {r.max_rss_mib:.0f} MiB")
    return {
        "wall_s": r.wall_s,
        "cpu_s": r.cpu_s,
        "peak_rss_mib": r.max_rss_mib,
        "disk_mib": dir_size_mib([out_dir]),
        "steps": {"build": asdict(r)},
    }


def run_hexcity_http(args: argparse.Namespace, pts: Points, cli: Path, graph_dir: Path) -> dict[str, Any]:
    res: dict[str, Any] = {}
    port = free_port()
    # hexcity authenticates every request: the benchmark pays for an API-key check like any client
    from hexcity.infra.auth import generate_api_key

    key, entry = generate_api_key("bench", {"routing:read"})
    env = dict(os.environ, HEXCITY_ROUTING_MAX_TABLE_SIZE="1000", HEXCITY_AUTH_API_KEYS=entry)
    cmd = [str(cli), "serve", "--graph", str(graph_dir), "--host", HOST, "--port", str(port)]
    with running_server(
        "hexcity serve", cmd, port, "/health/ready", WORK_DIR / "hexcity" / "serve.log", env=env
    ) as (proc, ready_s):
        res["ready_s"] = ready_s
        res["rss_ready_mib"] = tree_rss_mib(proc.pid)
        client = KeepAliveClient(port, headers={"X-API-Key": key})
        try:
            res["http"] = measure_http_server(client, pts, args, "hexcity")
        finally:
            client.close()
        res["rss_after_mib"] = tree_rss_mib(proc.pid)
        log(f"hexcity: server RSS after run {res['rss_after_mib']:.0f} MiB")
    return res


def run_hexcity(args: argparse.Namespace, pts: Points, points_file: Path, pbf: Path) -> dict[str, Any]:
    """Build, serve + HTTP, then in-process table in a child process. Each stage fails independently."""
    res: dict[str, Any] = {"version": package_version("hexcity"), "errors": {}}
    try:
        cli = hexcity_cli(args.hexcity_cli)
    except FileNotFoundError as exc:
        res["errors"]["cli"] = str(exc)
        log(f"hexcity: SKIPPED ({exc})")
        return res
    graph_dir = WORK_DIR / "hexcity" / "graph"
    try:
        res["build"] = hexcity_build(cli, pbf, graph_dir)
    except (RuntimeError, OSError) as exc:
        res["errors"]["build"] = str(exc)[:2000]
        log(f"hexcity: build SKIPPED/FAILED: {str(exc)[:500]}")
        return res
    try:
        res.update(run_hexcity_http(args, pts, cli, graph_dir))
    except (RuntimeError, OSError, http.client.HTTPException, ValueError) as exc:
        res["errors"]["http"] = str(exc)[:2000]
        log(f"hexcity: HTTP part FAILED: {str(exc)[:500]}")
    job = {"graph_dir": str(graph_dir), "points": str(points_file), **worker_repeats(args)}
    res["inproc"] = run_worker("hexcity", job, WORK_DIR / "hexcity")
    if "error" in res["inproc"]:
        res["errors"]["inproc"] = res["inproc"]["error"]
    return res


def cache_workload(pts: Points, seed: int, requests: int) -> list[tuple[list[Any], list[Any]]]:
    """A dispatch-like query mix: 5 drivers x 5 pickups per request around Zipf-popular hotspots.

    Hotspots are the first 300 table points; popularity follows 1/rank; drivers are jittered
    ~60 m and pickups ~30 m around their hotspot, so repeated origin/destination cells are common
    but exact coordinates almost never repeat (the case an exact-coordinate cache cannot serve).
    """
    from hexcity.kernel import LatLng

    rng = np.random.default_rng(seed)
    n_hot = min(300, len(pts.table_lat))
    weights = 1.0 / np.arange(1, n_hot + 1)
    weights /= weights.sum()
    deg_per_m = 1.0 / 111_320.0

    def draw(k: int, jitter_m: float) -> list[Any]:
        idx = rng.choice(n_hot, size=k, p=weights)
        dlat = rng.normal(0.0, jitter_m * deg_per_m, size=k)
        dlon = rng.normal(0.0, jitter_m * deg_per_m, size=k) / np.cos(np.radians(pts.table_lat[idx]))
        return [
            LatLng(float(la), float(lo))
            for la, lo in zip(pts.table_lat[idx] + dlat, pts.table_lon[idx] + dlon, strict=True)
        ]

    return [(draw(5, 60.0), draw(5, 30.0)) for _ in range(requests)]


def measure_cache(graph_dir: Path, pts: Points, repeats: int) -> dict[str, float] | None:
    """Semantic cache on vs off on ``cache_workload``; Redis too when it answers on 127.0.0.1:6379."""
    from hexcity.bootstrap import attach_table_cache
    from hexcity.routing import RoutingEngine, RoutingSettings

    del repeats
    workload = cache_workload(pts, seed=7, requests=2000)
    exact = RoutingEngine.open(graph_dir)
    exact.table(*workload[0])  # JIT warm-up
    off_ms, exact_values = [], []
    for src, dst in workload:
        t0 = time.perf_counter()
        result = exact.table(src, dst)
        off_ms.append((time.perf_counter() - t0) * 1000)
        exact_values.append(result.durations_s)
    out: dict[str, float] = {"requests": float(len(workload)), "off_median_ms": float(np.median(off_ms))}
    stores = {"memory": None}
    if redis_reachable():
        stores["redis"] = "redis://127.0.0.1:6379/15"
    for name, url in stores.items():
        engine = RoutingEngine.open(graph_dir)
        attach_table_cache(engine, RoutingSettings(cache_enabled=True, cache_redis_url=url))
        if url:
            import redis

            redis.Redis.from_url(url).flushdb()
        on_ms, errors = [], []
        for (src, dst), truth in zip(workload, exact_values, strict=True):
            t0 = time.perf_counter()
            result = engine.table(src, dst)
            on_ms.append((time.perf_counter() - t0) * 1000)
            ok = np.isfinite(truth) & (truth > 0)
            errors.extend((np.abs(result.durations_s[ok] - truth[ok]) / truth[ok]).tolist())
        stats = engine.cache.stats if engine.cache else {}
        looked_up = stats.get("hits", 0) + stats.get("negative_hits", 0) + stats.get("misses", 0)
        cells = looked_up + stats.get("bypassed", 0)
        out[f"{name}_on_median_ms"] = float(np.median(on_ms))
        out[f"{name}_speedup_median"] = float(np.median(off_ms) / np.median(on_ms))
        out[f"{name}_speedup_total"] = float(np.sum(off_ms) / np.sum(on_ms))
        out[f"{name}_hit_rate"] = float(stats.get("hits", 0) / looked_up) if looked_up else 0.0
        out[f"{name}_bypassed_share"] = float(stats.get("bypassed", 0) / cells) if cells else 0.0
        out[f"{name}_median_rel_error"] = float(np.median(errors)) if errors else 0.0
        out[f"{name}_p95_rel_error"] = float(np.percentile(errors, 95)) if errors else 0.0
        out[f"{name}_engine_calls"] = float(stats.get("engine_calls", 0))
    return out


def redis_reachable() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=0.5).ping())
    except Exception:
        return False


def hexcity_inproc_worker(job: dict[str, Any]) -> dict[str, Any]:
    """Runs in a child process: RoutingEngine.open + engine.table timings (after a JIT warm-up)."""
    from hexcity.kernel import LatLng
    from hexcity.routing import RoutingEngine  # type: ignore[attr-defined]

    pts = Points.load(Path(job["points"]))
    t0 = time.perf_counter()
    engine = RoutingEngine.open(Path(job["graph_dir"]))
    res: dict[str, Any] = {"open_s": time.perf_counter() - t0}
    latlngs = [LatLng(float(la), float(lo)) for la, lo in zip(pts.table_lat, pts.table_lon, strict=True)]
    for n, reps in ((100, job["repeats_100"]), (1000, job["repeats_1000"])):
        if reps <= 0 or n > len(latlngs):
            continue
        sub = latlngs[:n]
        t0 = time.perf_counter()
        warm = engine.table(sub, sub)  # warm-up (numba JIT on the first call)
        warm_s = time.perf_counter() - t0
        times: list[float] = []
        for _ in range(reps):
            t0 = time.perf_counter()
            engine.table(sub, sub)
            times.append(time.perf_counter() - t0)
        durations = np.asarray(warm.durations_s)
        res[f"table_{n}"] = {
            "n": n,
            "repeats": reps,
            "median_ms": float(np.median(times) * 1000),
            "min_ms": float(np.min(times) * 1000),
            "warmup_ms": warm_s * 1000,
            "shape": list(durations.shape),
            "unreachable_cells": int(np.isnan(durations).sum()),
        }
    res["rss_end_mib"] = tree_rss_mib(os.getpid())
    cache = measure_cache(Path(job["graph_dir"]), pts, job["repeats_100"])
    if cache is not None:
        res["cache"] = cache
    return res


# --------------------------------------------------------------------------------------------------
# pandana
# --------------------------------------------------------------------------------------------------


def pandana_table(net: Any, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float]:
    """All (src x dst) pairs through ``Network.shortest_path_lengths`` (pandana's many-to-many)."""
    a = np.repeat(src, len(dst))
    b = np.tile(dst, len(src))
    t0 = time.perf_counter()
    lens = net.shortest_path_lengths(a, b)
    secs = time.perf_counter() - t0
    out = np.asarray(lens, dtype=np.float64).reshape(len(src), len(dst))
    out[out >= PANDANA_UNREACHABLE] = np.nan
    return out, secs


def pandana_worker(job: dict[str, Any]) -> dict[str, Any]:
    """Runs in a child process: parse pbf -> DataFrames -> Network (CH) -> snapped tables."""
    import pandana
    import pandas as pd

    warnings.simplefilter("ignore")
    pts = Points.load(Path(job["points"]))
    res: dict[str, Any] = {"version": pandana.__version__}
    t0 = time.perf_counter()
    graph = largest_scc(read_car_graph(Path(job["pbf"])))
    nodes = pd.DataFrame({"x": graph.lon, "y": graph.lat}, index=pd.Index(graph.node_ids, name="id"))
    edges = pd.DataFrame(
        {"from": graph.node_ids[graph.src], "to": graph.node_ids[graph.dst], "time_s": graph.time_s}
    )
    res["prep_s"] = time.perf_counter() - t0
    res["nodes"], res["edges"] = len(nodes), len(edges)
    t0 = time.perf_counter()
    net = pandana.Network(nodes["x"], nodes["y"], edges["from"], edges["to"], edges[["time_s"]], twoway=False)
    res["build_s"] = time.perf_counter() - t0
    res["peak_rss_after_build_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["rss_after_build_mib"] = tree_rss_mib(os.getpid())

    table_nodes = np.asarray(net.get_node_ids(pd.Series(pts.table_lon), pd.Series(pts.table_lat)))
    route_o = np.asarray(net.get_node_ids(pd.Series(pts.route_lon[:, 0]), pd.Series(pts.route_lat[:, 0])))
    route_d = np.asarray(net.get_node_ids(pd.Series(pts.route_lon[:, 1]), pd.Series(pts.route_lat[:, 1])))
    lens = np.asarray(net.shortest_path_lengths(route_o, route_d), dtype=np.float64)
    lens[lens >= PANDANA_UNREACHABLE] = np.nan
    res["route_durations_s"] = lens.tolist()

    reps100 = int(job["repeats_100"])
    times = [pandana_table(net, table_nodes[:100], table_nodes[:100])[1] for _ in range(reps100 + 1)][1:]
    res["table_100"] = {"n": 100, "repeats": reps100, "median_ms": float(np.median(times) * 1000)}
    if int(job["repeats_1000"]) > 0 and len(table_nodes) >= 1000:
        res["table_1000"] = pandana_1000(net, table_nodes[:1000], job)
    res["peak_rss_end_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["rss_end_mib"] = tree_rss_mib(os.getpid())
    return res


def pandana_1000(net: Any, nodes: np.ndarray, job: dict[str, Any]) -> dict[str, Any]:
    """1000x1000 = 1e6 pairs. Probe with 1000x100; run the full table only if it fits the budget."""
    _, probe_s = pandana_table(net, nodes, nodes[:100])
    estimate_s = probe_s * 10
    budget_s = float(job["pandana_budget_s"])
    if estimate_s > budget_s:
        return {
            "n": 1000,
            "repeats": 0,
            "median_ms": estimate_s * 1000,
            "extrapolated": True,
            "note": f"1000x100 took {probe_s:.2f}s; 1000x1000 extrapolated x10 "
            f"(over the {budget_s:.0f}s budget)",
        }
    reps = max(1, min(int(job["repeats_1000"]), int(budget_s // max(estimate_s, 1e-3))))
    times = [pandana_table(net, nodes, nodes)[1] for _ in range(reps)]
    median_ms = float(np.median(times) * 1000)
    return {"n": 1000, "repeats": reps, "median_ms": median_ms, "probe_1000x100_s": probe_s}


# --------------------------------------------------------------------------------------------------
# Child-process workers (isolate memory and crashes; peak RSS via wait4)
# --------------------------------------------------------------------------------------------------

WORKERS = {"pandana": pandana_worker, "hexcity": hexcity_inproc_worker}


def worker_repeats(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "repeats_100": args.repeats_100,
        "repeats_1000": 0 if args.skip_1000 else args.repeats_1000,
        "pandana_budget_s": args.pandana_budget_s,
    }


def run_worker(kind: str, job: dict[str, Any], work: Path, timeout_s: float = 1800.0) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    job_file, out_file = work / f"{kind}-job.json", work / f"{kind}-result.json"
    out_file.unlink(missing_ok=True)
    job_file.write_text(json.dumps(job))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--job", str(job_file)]
    log(f"{kind}: in-process worker (child python)")
    r = run_measured(cmd, work / f"{kind}-worker.log", timeout_s=timeout_s)
    if r.returncode != 0 or not out_file.exists():
        return {"error": f"{kind} worker failed ({r.returncode}):\n{tail(r.log_path)}"}
    res: dict[str, Any] = json.loads(out_file.read_text())
    res["worker_wall_s"], res["worker_peak_rss_mib"] = r.wall_s, r.max_rss_mib
    return res


def worker_main(kind: str, job_file: Path) -> int:
    job = json.loads(job_file.read_text())
    res = WORKERS[kind](job)
    job_file.with_name(f"{kind}-result.json").write_text(json.dumps(res, default=float))
    return 0


# --------------------------------------------------------------------------------------------------
# Agreement, report
# --------------------------------------------------------------------------------------------------


FloatsLike = Sequence[float] | np.ndarray


def rel_diff_stats(values: FloatsLike, anchor: FloatsLike) -> dict[str, Any]:
    v, a = np.asarray(values, dtype=np.float64).ravel(), np.asarray(anchor, dtype=np.float64).ravel()
    ok = np.isfinite(v) & np.isfinite(a) & (a > 0)
    if not ok.any():
        return {"n": 0}
    rel = np.abs(v[ok] - a[ok]) / a[ok]
    return {
        "n": int(ok.sum()),
        "median_rel_diff": float(np.median(rel)),
        "p90_rel_diff": float(np.percentile(rel, 90)),
        "median_ratio": float(np.median(v[ok] / a[ok])),
    }


def get(d: dict[str, Any] | None, *keys: str) -> Any:
    cur: Any = d
    for k in keys:
        if not isinstance(cur, dict) or k not in cur:
            return None
        cur = cur[k]
    return cur


@dataclass
class Row:
    label: str
    osrm: float | None
    hexcity: float | None
    pandana: float | None
    target: float | None = None  # max hexcity/OSRM ratio
    fmt: str = "{:.1f}"
    ratio: bool = True
    notes: list[str] = field(default_factory=list)


def build_rows(results: dict[str, Any]) -> list[Row]:
    o, h, p = results.get("osrm") or {}, results.get("hexcity") or {}, results.get("pandana") or {}
    pan_1000 = get(p, "table_1000")
    pan_1000_label = " (extrapolated)" if pan_1000 and pan_1000.get("extrapolated") else ""
    ann = get(results, "config", "table_annotations") or "?"
    return [
        Row("Build: wall time (s)", get(o, "build", "wall_s"), get(h, "build", "wall_s"),
            get(p, "build_s"), 1.5, "{:.2f}"),
        Row("Build: CPU time user+sys (s)", get(o, "build", "cpu_s"), get(h, "build", "cpu_s"), None,
            None, "{:.2f}"),
        Row("Build: peak RSS (MiB)", get(o, "build", "peak_rss_mib"), get(h, "build", "peak_rss_mib"),
            get(p, "peak_rss_after_build_mib"), None, "{:.0f}"),
        Row("Graph on disk (MiB)", get(o, "build", "disk_mib"), get(h, "build", "disk_mib"), None,
            None, "{:.1f}"),
        Row("Server: spawn → ready (s)", get(o, "ready_s"), get(h, "ready_s"), None, None, "{:.2f}"),
        Row("/route p50 (ms)", get(o, "http", "route", "p50_ms"), get(h, "http", "route", "p50_ms"), None,
            1.0, "{:.2f}"),
        Row("/route p90 (ms)", get(o, "http", "route", "p90_ms"), get(h, "http", "route", "p90_ms"), None,
            None, "{:.2f}"),
        Row(f"/table 100×100 HTTP [{ann}], median (ms)", get(o, "http", "table_100", "median_ms"),
            get(h, "http", "table_100", "median_ms"), None, 0.5, "{:.1f}"),
        Row(f"/table 1000×1000 HTTP [{ann}], median (ms)", get(o, "http", "table_1000", "median_ms"),
            get(h, "http", "table_1000", "median_ms"), None, 0.5, "{:.0f}"),
        Row("/table 100×100 HTTP [duration], median (ms)",
            get(o, "http", "table_100_duration_only", "median_ms"),
            get(h, "http", "table_100_duration_only", "median_ms"), None, None, "{:.1f}"),
        Row("/table 1000×1000 HTTP [duration], median (ms)",
            get(o, "http", "table_1000_duration_only", "median_ms"),
            get(h, "http", "table_1000_duration_only", "median_ms"), None, None, "{:.0f}"),
        Row("In-process table 100×100, median (ms)", None, get(h, "inproc", "table_100", "median_ms"),
            get(p, "table_100", "median_ms"), None, "{:.1f}", ratio=False),
        Row(f"In-process table 1000×1000, median (ms){pan_1000_label}", None,
            get(h, "inproc", "table_1000", "median_ms"), get(pan_1000, "median_ms"), None, "{:.0f}",
            ratio=False),
        Row("Server RSS after run (MiB)", get(o, "rss_after_mib"), get(h, "rss_after_mib"),
            get(p, "rss_end_mib"), 2.0, "{:.0f}"),
        Row("Route durations vs OSRM: median rel. diff (%)", 0.0 if o.get("http") else None,
            pct(get(results, "agreement", "hexcity_route", "median_rel_diff")),
            pct(get(results, "agreement", "pandana_route", "median_rel_diff")), None, "{:.1f}", ratio=False),
        Row("Route durations vs OSRM: median ratio", 1.0 if o.get("http") else None,
            get(results, "agreement", "hexcity_route", "median_ratio"),
            get(results, "agreement", "pandana_route", "median_ratio"), None, "{:.3f}", ratio=False),
        Row("Table 100×100 durations vs OSRM: median rel. diff (%)", 0.0 if o.get("http") else None,
            pct(get(results, "agreement", "hexcity_table_100", "median_rel_diff")), None, None, "{:.1f}",
            ratio=False),
    ]  # fmt: skip


def pct(x: float | None) -> float | None:
    return None if x is None else x * 100


def fmt_value(v: float | None, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return fmt.format(v)


def render_markdown(results: dict[str, Any]) -> str:
    m, cfg = results["machine"], results["config"]
    v = results["versions"]
    lines = [
        f"# Routing benchmark: OSRM vs hexcity vs pandana — `{cfg['pbf_name']}`",
        "",
        f"- **Date:** {m['date_utc']}",
        f"- **Machine:** nproc={m['nproc']}, CPU: {m['cpu_model']}, RAM: {m['ram_gib']} GiB, "
        f"kernel {m['kernel']}, load average at start {m['loadavg_at_start']}",
        f"- **Versions:** OSRM {v['osrm']}, hexcity {v['hexcity']}, pandana {v['pandana']}, "
        f"Python {m['python']}, numpy {m['numpy']}",
        f"- **Extract:** `{cfg['pbf_name']}` ({cfg['pbf_mib']:.1f} MiB, sha256 {cfg['pbf_sha256']}…); "
        f"car network {results['points_info'].get('car_nodes')} nodes / "
        f"{results['points_info'].get('scc_nodes')} in its largest strongly connected component",
        f"- **Workload:** seed {cfg['seed']}; {cfg['route_pairs']} random /route pairs (sequential, "
        f"keep-alive, 10 warm-up); tables all-to-all over the first 100 / 1000 of "
        f"{cfg['table_points']} random points, 1 warm-up then median of {cfg['repeats_100']} (100×100) / "
        f"{cfg['repeats_1000']} (1000×1000) repeats; `/table` annotations=`{cfg['table_annotations']}`; "
        f"OSRM CH, `--threads {cfg['osrm_threads']}`{' ; **quick mode**' if cfg['quick'] else ''}",
        "",
        "| Metric | OSRM | hexcity | pandana | hexcity/OSRM | target | met? |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for row in build_rows(results):
        ratio = None
        if row.ratio and row.osrm and row.hexcity is not None and row.osrm > 0:
            ratio = row.hexcity / row.osrm
        target = f"≤ {row.target:g}×" if row.target is not None else ""
        met = ""
        if row.target is not None:
            met = "—" if ratio is None else ("✅" if ratio <= row.target else "❌")
        ratio_s = f"{ratio:.2f}×" if ratio is not None else ("—" if row.ratio else "")
        cells = [row.label, fmt_value(row.osrm, row.fmt), fmt_value(row.hexcity, row.fmt),
                 fmt_value(row.pandana, row.fmt), ratio_s, target, met]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    cache = get(results, "hexcity", "inproc", "cache")
    lines += ["", "## Semantic cache", ""]
    if cache:
        lines += ["| Metric | hexcity |", "|---|---:|"] + [f"| {k} | {val:.3g} |" for k, val in cache.items()]
    else:
        lines.append("Not measured (`measure_cache` is a TODO stub).")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    return "\n".join(lines) + "\n"


def collect_notes(results: dict[str, Any]) -> list[str]:
    notes = [
        "Ratios are hexcity/OSRM from this run; lower is better for every metric. "
        "'met?' compares the ratio with the target.",
        "Build = OSRM `osrm-extract` + `osrm-contract` (wall and CPU summed, peak RSS = max of the two); "
        "hexcity `hexcity routing build`; pandana = `pandana.Network(...)` constructor only (its CH "
        "preprocessing), on a graph this script builds from the same pbf.",
        "Peak RSS comes from `wait4` rusage of each child (what `/usr/bin/time -v` reports). pandana's "
        "value is the peak of the whole worker process (Python + pbf parsing + pandas) up to the end of "
        "the Network build, so it is not comparable one-to-one with a C++ binary.",
        "Server RSS = RSS of the server process tree (psutil) after all HTTP measurements; for pandana "
        "it is the in-process worker's RSS after its table runs (there is no pandana server).",
        "pandana snaps points to the nearest graph *node* (`get_node_ids`), OSRM/hexcity to the nearest "
        "road segment; pandana's speeds are a simple per-highway table (maxspeed×0.8 when tagged), "
        "without turn penalties or traffic signals, so its durations differ from OSRM's by design.",
    ]
    o, h, p = results.get("osrm") or {}, results.get("hexcity") or {}, results.get("pandana") or {}
    if "error" in o:
        notes.append(f"OSRM failed: {summarize_error(o['error'])}")
    for stage, err in (h.get("errors") or {}).items():
        notes.append(f"hexcity {stage} skipped/failed: {summarize_error(err)}")
    if "error" in p:
        notes.append(f"pandana failed: {summarize_error(p['error'])}")
    pan_1000 = get(p, "table_1000")
    if pan_1000 and pan_1000.get("note"):
        notes.append(f"pandana 1000×1000: {pan_1000['note']}.")
    elif pan_1000:
        reps = pan_1000["repeats"]
        notes.append(f"pandana 1000×1000 measured on all 1,000,000 pairs, {reps} repeat(s).")
    if p.get("prep_s") is not None:
        notes.append(
            f"pandana input prep (pbf → DataFrames, largest SCC) took {p['prep_s']:.2f}s, not included in "
            f"its build time; graph {p.get('nodes')} nodes / {p.get('edges')} directed edges."
        )
    for name, eng in (("OSRM", o), ("hexcity", h)):
        route = get(eng, "http", "route")
        if route and (route["no_route"] or route["http_errors"]):
            notes.append(f"{name}: {route['no_route']} of {route['n']} route pairs had no route "
                         f"({route['http_errors']} HTTP errors).")  # fmt: skip
        for n in (100, 1000):
            tab = get(eng, "http", f"table_{n}")
            if tab and tab.get("unreachable_cells"):
                notes.append(f"{name}: /table {n}×{n} had {tab['unreachable_cells']} unreachable cells.")
            if tab and tab.get("error"):
                notes.append(f"{name}: /table {n}×{n} failed: {tab['error'][:200]}")
    la = results["machine"].get("loadavg_at_end")
    notes.append(
        f"Shared machine: load average at start {results['machine']['loadavg_at_start']}, at end {la}; "
        "engines ran one after another, never concurrently."
    )
    return notes


def summarize_error(err: str) -> str:
    """First line plus the last line (for a traceback: the exception itself)."""
    lines = [ln.strip() for ln in err.strip().splitlines() if ln.strip()]
    if not lines:
        return err
    text = lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"
    return text[:400]


def strip_private(obj: Any) -> Any:
    """Drop ``_``-prefixed keys (numpy matrices kept for agreement checks) before writing JSON."""
    if isinstance(obj, dict):
        return {k: strip_private(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [strip_private(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def compute_agreement(results: dict[str, Any]) -> dict[str, Any]:
    agree: dict[str, Any] = {}
    osrm_route = get(results, "osrm", "http", "route", "durations_s")
    if osrm_route is None:
        return agree
    hex_route = get(results, "hexcity", "http", "route", "durations_s")
    if hex_route is not None:
        agree["hexcity_route"] = rel_diff_stats(hex_route, osrm_route)
    pan_route = get(results, "pandana", "route_durations_s")
    if pan_route is not None:
        agree["pandana_route"] = rel_diff_stats([math.nan if x is None else x for x in pan_route], osrm_route)
    o_tab = get(results, "osrm", "http", "table_100", "_durations")
    h_tab = get(results, "hexcity", "http", "table_100", "_durations")
    if o_tab is not None and h_tab is not None and o_tab.shape == h_tab.shape:
        agree["hexcity_table_100"] = rel_diff_stats(h_tab, o_tab)
    return agree


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pbf", type=Path, default=DEFAULT_PBF, help="OSM extract (default: Heidelberg)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--route-pairs", type=int, default=200)
    ap.add_argument("--table-points", type=int, default=1000)
    ap.add_argument("--repeats-100", type=int, default=None, help="default 20 (quick: 5)")
    ap.add_argument("--repeats-1000", type=int, default=None, help="default 5 (quick: 1)")
    ap.add_argument("--quick", action="store_true", help="smoke mode: 50 route pairs, fewer repeats")
    ap.add_argument("--skip-1000", action="store_true", help="skip every 1000x1000 measurement")
    ap.add_argument("--skip-osrm", action="store_true")
    ap.add_argument("--skip-hexcity", action="store_true")
    ap.add_argument("--skip-pandana", action="store_true")
    ap.add_argument("--table-annotations", default="duration,distance",
                    help="annotations= for /table on both servers (default: duration,distance)")  # fmt: skip
    ap.add_argument("--no-duration-only", action="store_true",
                    help="skip the extra annotations=duration /table variant")  # fmt: skip
    ap.add_argument("--hexcity-cli", default=None, help="hexcity executable (default: next to python)")
    ap.add_argument("--osrm-dir", default=None, help="OSRM install (default: output of osrm-anchor)")
    ap.add_argument("--osrm-threads", type=int, default=2, help="osrm-routed --threads")
    ap.add_argument("--pandana-budget-s", type=float, default=120.0,
                    help="seconds allowed for pandana 1000x1000, else extrapolated")  # fmt: skip
    ap.add_argument("--out", type=Path, default=None,
                    help="markdown path (default results/routing-<pbf stem>.md; JSON beside)")  # fmt: skip
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.route_pairs = min(args.route_pairs, 50)
    if args.repeats_100 is None:
        args.repeats_100 = 5 if args.quick else 20
    if args.repeats_1000 is None:
        args.repeats_1000 = 1 if args.quick else 5
    if args.out is None:
        stem = args.pbf.name.removesuffix(".osm.pbf")
        args.out = BENCH_DIR / "results" / f"routing-{stem}.md"
    return args


def guarded(name: str, fn: Any, *fn_args: Any) -> dict[str, Any]:
    """Run one engine's part; a failure becomes ``{"error": ...}`` instead of killing the run."""
    try:
        result: dict[str, Any] = fn(*fn_args)
        return result
    except Exception as exc:  # one engine must not take the others down
        log(f"{name}: FAILED: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"[:3000]}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.job)
    pbf = args.pbf.resolve()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine_info()}
    results["config"] = {
        "pbf": str(pbf),
        "pbf_name": pbf.name,
        "pbf_mib": pbf.stat().st_size / 1024 / 1024,
        "pbf_sha256": sha256_prefix(pbf),
        "seed": args.seed,
        "route_pairs": args.route_pairs,
        "table_points": args.table_points,
        "repeats_100": args.repeats_100,
        "repeats_1000": 0 if args.skip_1000 else args.repeats_1000,
        "table_annotations": args.table_annotations,
        "osrm_threads": args.osrm_threads,
        "quick": args.quick,
        "argv": sys.argv[1:] if argv is None else list(argv),
    }
    log(f"sampling points from {pbf.name} (seed {args.seed})")
    pts, results["points_info"] = sample_points(pbf, args.seed, args.table_points, args.route_pairs)
    points_file = WORK_DIR / "points.npz"
    pts.save(points_file)
    log(f"points: {results['points_info']}")

    if not args.skip_osrm:
        results["osrm"] = guarded("osrm", run_osrm, args, pts, pbf)
    if not args.skip_hexcity:
        results["hexcity"] = guarded("hexcity", run_hexcity, args, pts, points_file, pbf)
    if not args.skip_pandana:
        job = {"pbf": str(pbf), "points": str(points_file), **worker_repeats(args)}
        results["pandana"] = run_worker("pandana", job, WORK_DIR / "pandana")
        if "error" in results["pandana"]:
            log(f"pandana: FAILED: {results['pandana']['error'][:500]}")

    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["versions"] = {
        "osrm": get(results, "osrm", "version") or "not run",
        "hexcity": package_version("hexcity") or "not installed",
        "pandana": package_version("pandana") or "not installed",
    }
    results["agreement"] = compute_agreement(results)
    results["notes"] = collect_notes(results)
    md = render_markdown(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md)
    json_path = args.out.with_suffix(".json")
    json_path.write_text(json.dumps(strip_private(results), indent=2, default=float) + "\n")
    log(f"wrote {args.out} and {json_path}")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
