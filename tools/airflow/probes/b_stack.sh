#!/usr/bin/env bash
# Facts (b)-(e): a real stack (api-server, scheduler with LocalExecutor, dag-processor,
# triggerer) running one scenario. Usage: b_stack.sh SCENARIO [--db sqlite|postgres]
# Scenarios: mapped | pools | restart | killretry | connection (see stack.py). PROBE_SECONDS sets how long
# each trigger waits (5 s by default). Logs stay in $PROBE_DIR.
set -euo pipefail
source "$(dirname "$0")/env.sh"
echo "PROBE_DIR=$PROBE_DIR" >&2
exec "$ROOT/.venv-airflow/bin/python" "$HERE/stack.py" "$@"
