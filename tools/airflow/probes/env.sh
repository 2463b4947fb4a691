# Sourced by the probe scripts: an AIRFLOW_HOME under $PROBE_DIR (default a fresh temp dir),
# the probe DAGs folder, probe_lib on PYTHONPATH, no example DAGs, and the probe log.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
export PROBE_DIR="${PROBE_DIR:-$(mktemp -d /tmp/airflow-probe.XXXXXX)}"
export AIRFLOW_HOME="$PROBE_DIR/home"
export AIRFLOW__CORE__DAGS_FOLDER="$HERE/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=False
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
export PROBE_LOG="$PROBE_DIR/probe.jsonl"
AF="$ROOT/.venv-airflow/bin/airflow"
mkdir -p "$AIRFLOW_HOME"
