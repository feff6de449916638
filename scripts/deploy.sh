#!/bin/sh
# Deploy a model with preheat from a checkout: `scripts/deploy.sh --stack S --bucket B --model M`.
# Every option is `preheat deploy`'s own (see `preheat deploy --help`).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
exec "$here/.venv/bin/preheat" deploy "$@"
