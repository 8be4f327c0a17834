"""Start one real model server on a port, serving the iris classifier (transformers: a tiny chat model); stdlib only.

    python3 tests/servers/launch.py SERVER --port PORT [--predictor-host HOST:PORT]
    python3 tests/servers/launch.py transformers --prepare   # build and cache the model only

SERVER is kserve (predictor), kserve-transformer (forwards to --predictor-host),
mlserver, bentoml, torchserve, or transformers (`transformers serve`, OpenAI-compatible,
serving the tiny chat model of tiny_llm.py as model id `tiny-chat`; the classifier
servers serve iris). The server runs from its own virtual environment,
made by .ci/model-servers.sh under $AFTERSHOCK_SERVERS_VENV (default
~/.cache/aftershock/server-venvs). The model is trained on first use inside that venv
and cached. The launcher then *execs* the server, so the process the harness started
(and that process faults signal) is the server itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = "iris"
VENV_OF = {"kserve": "kserve", "kserve-transformer": "kserve", "mlserver": "mlserver",
           "bentoml": "bentoml", "torchserve": "torchserve", "transformers": "transformers"}
CHAT_MODEL = "tiny-chat"  # the model id `transformers serve` answers to: the model folder's name


def venv_root() -> Path:
    default = Path.home() / ".cache" / "aftershock" / "server-venvs"
    return Path(os.environ.get("AFTERSHOCK_SERVERS_VENV") or default)


def venv_dir(server: str) -> Path | None:
    """The server's venv if .ci/model-servers.sh installed it completely, else None."""
    d = venv_root() / VENV_OF[server]
    return d if (d / ".aftershock-installed").is_file() else None


def cache_dir(server: str) -> Path:
    base = os.environ.get("AFTERSHOCK_CACHE") or Path.home() / ".cache" / "aftershock"
    d = Path(base) / "server-models" / VENV_OF[server]
    d.mkdir(parents=True, exist_ok=True)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trained(venv: Path, kind: str, out: Path) -> Path:
    if not out.exists():
        subprocess.run([str(venv / "bin" / "python"), str(HERE / "train_iris.py"), kind, str(out)], check=True)
    return out


def command(server: str, port: int, predictor_host: str | None, version: str) -> tuple[list[str], dict[str, str], str | None]:
    """argv, extra environment and working directory that start `server` on `port`."""
    venv = venv_dir(server)
    if venv is None:
        raise SystemExit(f"launch: no {VENV_OF[server]} venv under {venv_root()}: run .ci/model-servers.sh {VENV_OF[server]}")
    py, bin_ = str(venv / "bin" / "python"), venv / "bin"
    cache = cache_dir(server)
    env = {"PATH": f"{bin_}{os.pathsep}{os.environ.get('PATH', '')}", "IRIS_MODEL_VERSION": version}
    if server == "kserve":
        model = trained(venv, "sklearn", cache / "model.joblib")
        return [py, str(HERE / "kserve_iris.py"), "--model_name", MODEL, "--model_path", str(model),
                "--http_port", str(port), "--grpc_port", str(free_port())], env, None
    if server == "kserve-transformer":
        if not predictor_host:
            raise SystemExit("launch: kserve-transformer needs --predictor-host HOST:PORT")
        return [py, str(HERE / "kserve_iris.py"), "--model_name", MODEL, "--predictor_host", predictor_host,
                "--predictor_protocol", "v2", "--http_port", str(port), "--grpc_port", str(free_port())], env, None
    if server == "mlserver":
        model = trained(venv, "sklearn", cache / "model.joblib")
        repo = Path(tempfile.mkdtemp(prefix="aftershock-mlserver-"))  # settings carry this launch's ports
        (repo / MODEL).mkdir(parents=True, exist_ok=True)
        (repo / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
            "parallel_workers": 0, "load_models_at_startup": True}))
        (repo / MODEL / "model-settings.json").write_text(json.dumps({
            "name": MODEL, "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(model), "version": version}}))
        return [str(bin_ / "mlserver"), "start", str(repo)], env, None
    if server == "bentoml":
        env["IRIS_MODEL"] = str(trained(venv, "sklearn", cache / "model.joblib"))
        env["BENTOML_HOME"] = str(cache / "bentoml-home")
        env["BENTOML_DO_NOT_TRACK"] = "true"
        return [str(bin_ / "bentoml"), "serve", "bento_iris:Iris", "--host", "127.0.0.1", "--port", str(port),
                "--working-dir", str(HERE)], env, None
    if server == "torchserve":
        return torchserve_command(venv, cache, port, version, env)
    if server == "transformers":
        chat_model(venv, cache)
        # no hub is reachable: never try it; the folder name, relative to cwd, is the model id
        env.update({"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HOME": str(cache / "hf-home")})
        return [str(bin_ / "transformers"), "serve", CHAT_MODEL, "--host", "127.0.0.1", "--port", str(port),
                "--device", "cpu", "--log-level", "warning"], env, str(cache)
    raise SystemExit(f"launch: unknown server {server!r}: use one of {', '.join(VENV_OF)}")


def chat_model(venv: Path, cache: Path) -> Path:
    """The tiny chat model, built on first use (tiny_llm.py, tens of seconds) and cached."""
    out = cache / CHAT_MODEL
    if not (out / "config.json").exists():
        subprocess.run([str(venv / "bin" / "python"), str(HERE / "tiny_llm.py"), str(out)], check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return out


def torchserve_command(venv: Path, cache: Path, port: int, version: str, env: dict[str, str]) -> tuple[list[str], dict[str, str], str]:
    store = cache / f"model-store-{version}"
    mar = store / f"{MODEL}.mar"
    if not mar.exists():
        model = trained(venv, "torchscript", cache / "model.pt")
        tmp = cache / f"mar-{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(venv / "bin" / "torch-model-archiver"), "--model-name", MODEL, "--version", version,
                        "--serialized-file", str(model), "--handler", str(HERE / "torchserve_iris.py"),
                        "--export-path", str(tmp), "--force"], check=True)
        store.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / f"{MODEL}.mar", mar)
        shutil.rmtree(tmp, ignore_errors=True)
    run = Path(tempfile.mkdtemp(prefix="aftershock-torchserve-"))
    run.mkdir(parents=True, exist_ok=True)
    management = os.environ.get("IRIS_TORCHSERVE_MANAGEMENT_PORT") or str(free_port())
    (run / "config.properties").write_text("\n".join([
        f"inference_address=http://127.0.0.1:{port}",
        f"management_address=http://127.0.0.1:{management}",
        f"metrics_address=http://127.0.0.1:{free_port()}",
        "default_workers_per_model=1",
        "disable_token_authorization=true",
        "enable_envvars_config=false",
        "install_py_dep_per_model=false",
        f"model_store={store}",
        f"load_models={MODEL}.mar",
        "",
    ]))
    env.update({"LOG_LOCATION": str(run / "logs"), "METRICS_LOCATION": str(run / "logs"),
                "JAVA_TOOL_OPTIONS": "-Xmx256m"})
    return [str(venv / "bin" / "torchserve"), "--start", "--foreground", "--ncs", "--disable-token-auth",
            "--ts-config", str(run / "config.properties")], env, str(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("server", choices=sorted(VENV_OF))
    parser.add_argument("--port", type=int)
    parser.add_argument("--predictor-host", help="host:port of the predictor (kserve-transformer)")
    parser.add_argument("--version", default="1", help="the model version the server reports")
    parser.add_argument("--prepare", action="store_true", help="build and cache the served model, then exit")
    args = parser.parse_args()
    if args.prepare:
        venv = venv_dir(args.server)
        if venv is None or args.server != "transformers":
            raise SystemExit(f"launch: --prepare builds the transformers model (installed: {venv is not None})")
        print(f"launch: model ready in {chat_model(venv, cache_dir(args.server))}")
        return
    if args.port is None:
        parser.error("--port is required")
    argv, env, cwd = command(args.server, args.port, args.predictor_host, args.version)
    if cwd:
        os.chdir(cwd)
    sys.stdout.flush()
    os.execve(argv[0], argv, {**os.environ, **env})


if __name__ == "__main__":
    main()
