#!/usr/bin/env bash
# Fact (f): the Airflow 3.3.2 import paths, the default of operators.default_deferrable, a
# connection of a custom type (conn_type "amlretrain", no provider registered) read by a task
# and by a trigger, and XCom push/pull, via `airflow dags test probe_connection` on SQLite.
set -euo pipefail
source "$(dirname "$0")/env.sh"
PYB="$ROOT/.venv-airflow/bin/python"
"$PYB" - <<'PY'
import importlib, warnings
warnings.simplefilter("error")  # a deprecated path would raise here
for mod, names in [
    ("airflow.sdk", ["BaseOperator", "BaseHook", "Connection", "Context", "conf", "get_current_context", "task", "DAG"]),
    ("airflow.triggers.base", ["BaseTrigger", "TriggerEvent"]),
    ("airflow.exceptions", ["AirflowException"]),
    ("airflow.sdk.exceptions", ["AirflowException", "TaskDeferred", "AirflowSkipException", "AirflowFailException"]),
]:
    m = importlib.import_module(mod)
    print(mod, {n: getattr(getattr(m, n), "__module__", type(getattr(m, n)).__module__) for n in names})
for old in ["airflow.models.baseoperator", "airflow.hooks.base", "airflow.configuration"]:
    try:
        importlib.import_module(old)
        print(old, "imports without warning")
    except Exception as e:
        print(old, "->", type(e).__name__, str(e)[:200])
PY
# A connection of a type no provider registers, in the environment (never a real key here).
export AIRFLOW_CONN_AMLRETRAIN_PROBE='{"conn_type": "amlretrain", "extra": {"workspace": "ws", "ledger": "blob"}}'
"$AF" db migrate >"$PROBE_DIR/migrate.log" 2>&1
echo "--- connections add --conn-type amlretrain (unknown type) to the DB:"
"$AF" connections add amlretrain_db --conn-type amlretrain --conn-extra '{"workspace": "ws"}' 2>&1 | tail -2
"$AF" connections get amlretrain_db -o json 2>&1 | tail -3 | cut -c1-300
"$AF" dags reserialize >"$PROBE_DIR/reserialize.log" 2>&1
set +e
"$AF" dags test probe_connection >"$PROBE_DIR/dags_test.log" 2>&1
echo "dags test probe_connection exit $?"
set -e
cat "$PROBE_LOG"
grep -E "Task failed|Error" "$PROBE_DIR/dags_test.log" | head -5 || true
