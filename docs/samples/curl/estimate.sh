#!/usr/bin/env bash
# The price of an order, without starting it: POST /api/v1/estimate.
set -euo pipefail
URL=${REELGATE_URL:-http://127.0.0.1:8000}
curl -fsS -X POST "$URL/api/v1/estimate" \
  -H "Authorization: Bearer $REELGATE_API_KEY" -H "Content-Type: application/json" \
  -d "{\"model\": \"${REELGATE_MODEL:-sandbox-t2v}\", \"duration\": 2, \"resolution\": \"480p\"}"
echo
