#!/usr/bin/env bash
# Verify a webhook reelgate sent (Standard Webhooks): body in the file $1, headers and secret in the environment.
set -euo pipefail
BODY_FILE=$1
NOW=$(date +%s)
if (( NOW - WEBHOOK_TIMESTAMP > 300 || WEBHOOK_TIMESTAMP - NOW > 300 )); then
  echo "stale timestamp" >&2; exit 1
fi
KEY_HEX=$(printf '%s' "${WEBHOOK_SECRET#whsec_}" | base64 -d | od -An -tx1 | tr -d ' \n')
EXPECTED=$( { printf '%s.%s.' "$WEBHOOK_ID" "$WEBHOOK_TIMESTAMP"; cat "$BODY_FILE"; } \
  | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$KEY_HEX" -binary | base64)
for ENTRY in $WEBHOOK_SIGNATURE; do
  if [[ "$ENTRY" == "v1,$EXPECTED" ]]; then
    jq -r '"genuine: \(.type) \(.data.id)"' "$BODY_FILE"; exit 0
  fi
done
echo "signature mismatch" >&2; exit 1
