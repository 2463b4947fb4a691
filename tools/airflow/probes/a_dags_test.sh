#!/usr/bin/env bash
# Fact (a): `airflow dags test` of a DAG with a mapped deferrable task (3 x a 5 s trigger)
# on SQLite. Prints the wall time of each step and the probe log (which pid ran triggers).
set -euo pipefail
source "$(dirname "$0")/env.sh"
echo "PROBE_DIR=$PROBE_DIR"
t0=$(date +%s.%N)
"$AF" db migrate >"$PROBE_DIR/migrate.log" 2>&1
t1=$(date +%s.%N)
"$AF" dags reserialize >"$PROBE_DIR/reserialize.log" 2>&1
t2=$(date +%s.%N)
set +e
"$AF" dags test probe_mapped_deferrable >"$PROBE_DIR/dags_test.log" 2>&1
rc=$?
set -e
t3=$(date +%s.%N)
printf 'db migrate %.1f s, dags reserialize %.1f s, dags test %.1f s (exit %d)\n' \
  "$(echo "$t1-$t0" | bc)" "$(echo "$t2-$t1" | bc)" "$(echo "$t3-$t2" | bc)" "$rc"
echo "--- probe log ($PROBE_LOG), dags test pid unknown: compare pids"
cat "$PROBE_LOG"
echo "--- dags test log: trigger/defer/state lines"
grep -iE "trigger|defer|state|success|fail" "$PROBE_DIR/dags_test.log" | tail -40
