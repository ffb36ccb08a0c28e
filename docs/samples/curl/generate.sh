#!/usr/bin/env bash
# Start a generation; prints its id. The Idempotency-Key makes a retried request start only one job.
set -euo pipefail
URL=${REELGATE_URL:-http://127.0.0.1:8000}
curl -fsS -X POST "$URL/api/v1/generations" \
  -H "Authorization: Bearer $REELGATE_API_KEY" -H "Content-Type: application/json" \
  -H "Idempotency-Key: sample-$(date +%s%N)" \
  -d "{\"model\": \"${REELGATE_MODEL:-sandbox-t2v}\", \"prompt\": \"a paper boat drifting on a pond\",
       \"duration\": 2, \"resolution\": \"480p\"}" | jq -r .id
