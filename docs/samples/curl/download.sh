#!/usr/bin/env bash
# Download a finished generation's video to a file.
set -euo pipefail
URL=${REELGATE_URL:-http://127.0.0.1:8000}
curl -fsS -L -o "$2" "$URL/api/v1/generations/$1/content" -H "Authorization: Bearer $REELGATE_API_KEY"
echo "saved $2"
