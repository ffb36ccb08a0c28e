#!/usr/bin/env bash
# Wait for a generation to end; prints its final status (succeeded, failed, canceled or expired).
set -euo pipefail
URL=${REELGATE_URL:-http://127.0.0.1:8000}
ID=$1
while true; do
  STATUS=$(curl -fsS "$URL/api/v1/generations/$ID" -H "Authorization: Bearer $REELGATE_API_KEY" | jq -r .status)
  case "$STATUS" in
    succeeded|failed|canceled|expired) echo "$STATUS"; exit 0 ;;
  esac
  sleep 1
done
