#!/usr/bin/env bash
# need.sh CMD DEBIAN_PACKAGE [optional]
# Makes sure CMD is on PATH. As root on a Debian-like machine it installs
# DEBIAN_PACKAGE with apt-get; otherwise it stops with a message saying how.
# With "optional" it only warns when CMD cannot be had.
set -euo pipefail
cmd=$1 pkg=$2 optional=${3:-}
command -v "$cmd" >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "need.sh: $cmd not found, installing Debian package $pkg" >&2
  if [ ! -f /tmp/.tollgate-apt-updated ]; then
    apt-get update -qq >/dev/null && touch /tmp/.tollgate-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
  command -v "$cmd" >/dev/null 2>&1 && exit 0
fi
msg="$cmd is required: install the $pkg package (e.g. sudo apt-get install -y $pkg) and run again"
if [ "$optional" = optional ]; then echo "need.sh: warning: $msg" >&2; exit 0; fi
echo "need.sh: $msg" >&2
exit 1
