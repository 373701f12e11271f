#!/usr/bin/env bash
# Builds the chaincode package the peer's built-in ccaas builder installs:
# metadata.json beside code.tar.gz, which holds connection.json (where the peer
# dials the running chaincode server).
set -euo pipefail
cd "$(dirname "$0")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -C . -czf "$work/code.tar.gz" connection.json
cp metadata.json "$work/"
tar -C "$work" -czf emr-ledger.tar.gz metadata.json code.tar.gz
echo "deploy/fabric/emr-ledger.tar.gz"
