#!/bin/bash
# A/B of the window read-ahead (issue 17): exportd export (CLI) old vs new binary beside clickhouse-client.
# Usage: start a ClickHouse holding the bench enterprise on port 47819, build /tmp/exportd-old and /tmp/exportd-new, run.
ENT=enterprises/b79a762d-1030-4845-b7f4-c133dab3ef3b
DSN=clickhouse://127.0.0.1:47819/default
FROM=2026-01-01T00:00:00Z; TO=2026-01-23T23:59:59Z
for r in 1 2 3 4 5 6 7; do
  for b in old new native csv; do
    s=$(date +%s.%N)
    if [ $b = csv ]; then
      clickhouse-client --port 47819 -q "SELECT * FROM operations_activity WHERE enterprise_ref='$ENT' AND occurred_at_utc >= 1767225600000 AND occurred_at_utc < 1769212800000 ORDER BY occurred_at_utc, activity_id FORMAT CSVWithNames" > /dev/shm/ab.out
    elif [ $b = native ]; then
      clickhouse-client --port 47819 -q "SELECT * FROM operations_activity WHERE enterprise_ref='$ENT' AND occurred_at_utc >= 1767225600000 AND occurred_at_utc < 1769212800000 ORDER BY occurred_at_utc, activity_id FORMAT Native" > /dev/shm/ab.out
    else
      /tmp/exportd-$b export --clickhouse-dsn $DSN --scope $ENT --from $FROM --to $TO --out /dev/shm/ab.out 2>/dev/null
    fi
    e=$(date +%s.%N); echo "$b $(echo "$e - $s" | bc) $(stat -c %s /dev/shm/ab.out)"
  done
done
