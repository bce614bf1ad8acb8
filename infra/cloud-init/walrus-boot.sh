#!/bin/bash
# walrus-boot: turns a fresh VM into a Walrus-TS node. cloud-init runs it once, at first boot, after
# it wrote /etc/walrus/boot.env and the systemd units (infra/cloud-init/cloud-init.yaml.tftpl). It
#   1. makes the dedicated `walrus` user and checks the data volume is mounted at the data dir;
#   2. installs Node.js (official tarball, checked against the release's SHASUMS256.txt);
#   3. fetches the cluster secret and the gateway tokens from Secret Manager (never in user data);
#   4. installs the release tarball (`npm pack` output, checked against its sha256) into
#      /opt/walrus/releases/<sha256> and points /opt/walrus/current at it;
#   5. writes the node's and the gateway's flags, and enables and starts both units.
# Every step can run again: `walrus-boot` redoes what is missing; `walrus-boot upgrade URL SHA256`
# installs another release and restarts this VM's node and gateway (one VM at a time: README).
#
# WALRUS_ROOT (unset on a VM) is a directory standing in for / : the repository's tests run this
# script for several "VMs" on one machine, each with its own root directory and network namespace.
set -euo pipefail

root=${WALRUS_ROOT:-}
# Limits: how long to wait for the secrets (an operator may add them after `terraform apply`) and
# for a download, before giving up (cloud-init logs the failure; rerun walrus-boot once fixed).
secret_attempts_max=60
secret_retry_delay_s=10
download_attempts_max=5
download_timeout_s=300
npm_timeout_s=900

log() { echo "walrus-boot: $*" >&2; }
fail() {
  log "FAILED: $*"
  exit 1
}

# shellcheck source=/dev/null
. "$root/etc/walrus/boot.env"
for name in node_id node_ip raft_port client_port gateway_port admin_port gateway_nodes data_dir \
  node_version node_dist_url release_url release_sha256 metadata_url secretmanager_url \
  cluster_secret_name gateway_tokens_secret_name; do
  [ -n "${!name:-}" ] || fail "boot.env has no $name"
done

if [ "${1:-}" = upgrade ]; then
  [ $# -eq 3 ] || fail "usage: walrus-boot upgrade <release-url> <release-sha256>"
  release_url=$2
  release_sha256=$3
fi
[[ $release_sha256 =~ ^[0-9a-f]{64}$ ]] || fail "release sha256 must be 64 hex digits"

export PATH="$root/usr/local/bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

download() { # url file
  curl -fsSL --retry "$download_attempts_max" --retry-all-errors --max-time "$download_timeout_s" \
    -o "$2" "$1" || fail "could not download $1"
}

# 1. The user and the data volume.
if ! id -u walrus >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$data_dir" --no-create-home --shell /usr/sbin/nologin walrus
fi
mountpoint -q "$root$data_dir" || fail "the data volume is not mounted at $data_dir"
chown walrus:walrus "$root$data_dir"
chmod 0750 "$root$data_dir"

# 2. Node.js.
case $(uname -m) in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) fail "unsupported machine $(uname -m)" ;;
esac
if [ "$("$root/usr/local/bin/node" --version 2>/dev/null || true)" != "v$node_version" ]; then
  tarball="node-v$node_version-linux-$arch.tar.gz"
  log "installing Node.js $node_version"
  download "$node_dist_url/v$node_version/$tarball" "$work/$tarball"
  download "$node_dist_url/v$node_version/SHASUMS256.txt" "$work/SHASUMS256.txt"
  (cd "$work" && grep " $tarball\$" SHASUMS256.txt | sha256sum -c --status) ||
    fail "$tarball does not match SHASUMS256.txt"
  mkdir -p "$root/usr/local"
  tar -xzf "$work/$tarball" -C "$root/usr/local" --strip-components=1 --no-same-owner \
    "node-v$node_version-linux-$arch/bin" "node-v$node_version-linux-$arch/lib" \
    "node-v$node_version-linux-$arch/include" "node-v$node_version-linux-$arch/share"
fi
node --version >/dev/null || fail "node does not run"

# 3. Secrets: the VM's service account reads the latest version of each secret.
metadata_token() { # an access token of the VM's service account
  curl -fsS --max-time 10 -H 'Metadata-Flavor: Google' \
    "$metadata_url/instance/service-accounts/default/token" |
    node -e 'let s="";process.stdin.on("data",(d)=>{s+=d}).on("end",()=>process.stdout.write(JSON.parse(s).access_token))'
}
access_secret() { # secret resource name (projects/P/secrets/S) → its payload on stdout
  local token
  token=$(metadata_token) || return 1
  curl -fsS --max-time 10 -H "Authorization: Bearer $token" \
    "$secretmanager_url/$1/versions/latest:access" |
    node -e 'let s="";process.stdin.on("data",(d)=>{s+=d}).on("end",()=>process.stdout.write(Buffer.from(JSON.parse(s).payload.data,"base64")))'
}
fetch_secret() { # name file
  local attempt
  for ((attempt = 1; attempt <= secret_attempts_max; attempt++)); do
    if access_secret "$1" >"$2.tmp" && [ -s "$2.tmp" ]; then
      mv "$2.tmp" "$2"
      return 0
    fi
    log "secret $1 not readable yet (attempt $attempt of $secret_attempts_max)"
    sleep "$secret_retry_delay_s"
  done
  rm -f "$2.tmp"
  fail "secret $1 has no readable version: add one (infra/terraform/README.md)"
}
mkdir -p "$root/etc/walrus"
chown root:walrus "$root/etc/walrus"
chmod 0750 "$root/etc/walrus"
umask 0027
fetch_secret "$cluster_secret_name" "$work/cluster-secret"
cluster_secret=$(tr -d '\r\n' <"$work/cluster-secret")
[[ $cluster_secret =~ ^[A-Za-z0-9+/=_.-]{16,512}$ ]] ||
  fail "the cluster secret must be 16..512 characters of A-Z a-z 0-9 + / = _ . -"
printf 'WALRUS_CLUSTER_SECRET=%s\n' "$cluster_secret" >"$root/etc/walrus/secrets.env"
fetch_secret "$gateway_tokens_secret_name" "$work/gateway-tokens.json"
node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); if(!Array.isArray(d.tokens)||d.tokens.length===0) process.exit(1)' \
  "$work/gateway-tokens.json" || fail 'the gateway tokens secret must be {"tokens": [...]} with at least one token'
cp "$work/gateway-tokens.json" "$root/etc/walrus/gateway-tokens.json"
chown root:walrus "$root/etc/walrus/secrets.env" "$root/etc/walrus/gateway-tokens.json"
chmod 0640 "$root/etc/walrus/secrets.env" "$root/etc/walrus/gateway-tokens.json"
umask 0022

# 4. The release.
release_dir="$root/opt/walrus/releases/$release_sha256"
if [ ! -x "$release_dir/bin/walrus-node" ]; then
  log "installing the release $release_url"
  case $release_url in
    # A private Cloud Storage object: read with the VM's service account.
    https://storage.googleapis.com/*)
      curl -fsSL --retry "$download_attempts_max" --retry-all-errors --max-time "$download_timeout_s" \
        -H "Authorization: Bearer $(metadata_token)" -o "$work/walrus.tgz" "$release_url" ||
        fail "could not download $release_url" ;;
    *) download "$release_url" "$work/walrus.tgz" ;;
  esac
  echo "$release_sha256  $work/walrus.tgz" | sha256sum -c --status || fail "$release_url does not match its sha256"
  rm -rf "$release_dir.partial"
  mkdir -p "$release_dir.partial"
  timeout "$npm_timeout_s" npm install --global --prefix "$release_dir.partial" --omit=dev \
    --no-audit --no-fund --loglevel=error "$work/walrus.tgz" || fail "npm install of the release failed"
  mv "$release_dir.partial" "$release_dir"
fi
# Relative, so that the link also resolves under another root (systemd-analyze --root).
ln -sfn "releases/$release_sha256" "$root/opt/walrus/current.new"
mv -T "$root/opt/walrus/current.new" "$root/opt/walrus/current"
bin="$root/opt/walrus/current/bin"

# 5. Flags, then the units. --admin-port (Prometheus /metrics, /health, /ready) only when this
# release's walrus-node has it.
node_args="--node-id $node_id --data-dir $root$data_dir --raft-host $node_ip --raft-port $raft_port"
node_args+=" --client-host $node_ip --client-port $client_port"
# Node 1 bootstraps; the others join it (a node that already has Raft state ignores --join).
[ -n "${join_address:-}" ] && node_args+=" --join $join_address"
node_help=$("$bin/walrus-node" --help)
if grep -q -- '--admin-port' <<<"$node_help"; then
  node_args+=" --admin-port $admin_port"
  grep -q -- '--admin-host' <<<"$node_help" && node_args+=" --admin-host $node_ip"
fi
printf 'WALRUS_NODE_ARGS=%s\n' "$node_args" >"$root/etc/walrus/node.env"
gateway_args="--host 0.0.0.0 --port $gateway_port --nodes $gateway_nodes"
gateway_args+=" --tokens-file $root/etc/walrus/gateway-tokens.json"
printf 'WALRUS_GATEWAY_ARGS=%s\n' "$gateway_args" >"$root/etc/walrus/gateway.env"

systemctl daemon-reload
if [ "${1:-}" = upgrade ]; then
  systemctl restart walrus-node.service walrus-gateway.service
else
  systemctl enable --now walrus-node.service walrus-gateway.service
fi
log "node $node_id started ($(node --version), release $release_sha256)"
