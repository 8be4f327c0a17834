#!/usr/bin/env bash
# Install the real model servers that tests/test_protocols_servers.py and
# scenarios/servers/ talk to, one virtual environment per server (their pins clash
# with ours and with each other):
#
#   ${AFTERSHOCK_SERVERS_VENV:-$HOME/.cache/aftershock/server-venvs}/<name>
#
# Idempotent: a venv whose stamp matches its package list is left alone, so a second
# run takes a second. Usage: .ci/model-servers.sh [kserve mlserver bentoml torchserve transformers]
# transformers is `transformers serve` (OpenAI-compatible) with a tiny chat model built
# here (tests/servers/tiny_llm.py: no model hub is reachable), cached beside the venvs.
set -euo pipefail

ROOT="${AFTERSHOCK_SERVERS_VENV:-$HOME/.cache/aftershock/server-venvs}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$ROOT"

# name -> pip requirements (exact pins: what the tests were run against)
declare -A PACKAGES=(
  [kserve]="kserve==0.21.0 scikit-learn joblib"
  [mlserver]="mlserver==1.7.1 mlserver-sklearn==1.7.1"
  [bentoml]="bentoml==1.4.40 scikit-learn joblib"
  # torch first and exactly 2.13.0 (the CPU build on local disk); see install_venv.
  # scikit-learn only brings the iris data set the test model is trained on; pyyaml is
  # imported by TorchServe's Python worker but not declared by the torchserve wheel
  [torchserve]="torchserve==0.12.0 torch-model-archiver==0.12.0 pyyaml scikit-learn"
  # torch first and exactly 2.13.0 here too; the serving extra brings FastAPI, uvicorn
  [transformers]="transformers[serving]==5.24.0"
)

install_venv() {
  local name="$1" packages="${PACKAGES[$1]}" dir="$ROOT/$1"
  local stamp="$dir/.aftershock-installed"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$packages" ]]; then
    echo "model-servers: $name already installed in $dir"
    return 0
  fi
  local t0=$SECONDS
  echo "model-servers: installing $name into $dir"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --upgrade pip
  if [[ "$name" == torchserve ]] && ! command -v java >/dev/null; then
    if command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless
    else
      echo "model-servers: torchserve needs a Java 17 runtime and apt-get is missing; skipping it" >&2
      return 0
    fi
  fi
  if [[ "$name" == torchserve || "$name" == transformers ]]; then
    # never any other torch spec: other versions download multi-GB CUDA builds
    "$dir/bin/python" -m pip install -q torch==2.13.0
    echo "torch==2.13.0" >"$dir/constraints.txt"
    # shellcheck disable=SC2086
    "$dir/bin/python" -m pip install -q -c "$dir/constraints.txt" $packages
  else
    # shellcheck disable=SC2086
    "$dir/bin/python" -m pip install -q $packages
  fi
  echo "$packages" >"$stamp"
  echo "model-servers: $name installed in $((SECONDS - t0)) s, $(du -sh "$dir" | cut -f1)"
}

# the model a server serves, made once and cached, so that tests never wait for it
prepare_model() {
  if [[ "$1" == transformers ]]; then
    "$PYTHON" "$(dirname "$0")/../tests/servers/launch.py" transformers --prepare
  fi
}

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  names=(kserve mlserver bentoml torchserve transformers)
fi
for name in "${names[@]}"; do
  if [[ -z "${PACKAGES[$name]:-}" ]]; then
    echo "model-servers: unknown server $name (known: ${!PACKAGES[*]})" >&2
    exit 2
  fi
  install_venv "$name"
  prepare_model "$name"
done
