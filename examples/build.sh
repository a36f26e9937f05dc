#!/usr/bin/env bash
# Build tapir-example/dummy:latest, the image the example tasks in this folder run.
# Offline: FROM scratch + static busybox, see tests/images/build-image.sh.
# Prints the image id on stdout; exit status is build-image.sh's (0 ok, 1 failed).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$here/../tests/images/build-image.sh" tapir-example/dummy:latest \
  "$here/dummy/processing-container.json"
