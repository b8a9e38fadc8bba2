#!/usr/bin/env bash
# Install (or update) the MallPulse edge agent on a Debian/Ubuntu store gateway.
# Idempotent: run it again to upgrade; an existing /etc/mallpulse/edge.yaml is never overwritten.
set -euo pipefail

readonly SERVICE=mallpulse-edge
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"

PREFIX=/
DRY_RUN=0
SOURCE="$REPO_DIR"
CONFIG=""
MODELS_FROM=""
PYTHON=""
WHEELS=""
DO_VENV=1
DO_START=1
RUN_USER=mallpulse
UNIT="$REPO_DIR/deploy/systemd/$SERVICE.service"

usage() {
  cat <<EOF
Usage: install.sh [OPTIONS]

Install the MallPulse edge agent as the systemd service '$SERVICE':
  1. apt packages: python3 (3.11 or newer) with venv, ca-certificates
  2. system user and group '$RUN_USER' (member of 'video' for USB cameras)
  3. directories: /etc/mallpulse (config), /var/lib/mallpulse (outbox, models),
     /opt/mallpulse (virtual environment)
  4. virtual environment /opt/mallpulse/venv with mallpulse[edge]
  5. model manifests in /etc/mallpulse/models, weights in /var/lib/mallpulse/models
  6. device config /etc/mallpulse/edge.yaml (validated; an existing one is kept)
  7. systemd unit (deploy/systemd/$SERVICE.service) plus a drop-in with this layout's
     paths and user, then enable and (re)start

Options:
  --config FILE       device config to install as /etc/mallpulse/edge.yaml
  --models-from DIR   folder with the model weights (*.onnx) named by the manifests
  --source PATH       project folder or wheel to install (default: $REPO_DIR)
  --python BIN        Python 3.11+ interpreter for the venv (default: found or installed)
  --wheels DIR        install offline from this wheelhouse (pip --no-index --find-links);
                      build it on a machine of the same architecture with:
                      pip wheel -w DIR -c requirements/ci.txt ".[edge]" setuptools wheel
  --unit FILE         systemd unit to install (default: deploy/systemd/$SERVICE.service)
  --prefix DIR        install below DIR instead of / (staging, images, tests): no apt, no
                      user, no chown, no systemctl
  --no-venv           leave the virtual environment alone (provided some other way)
  --no-start          install and enable, but do not (re)start the service
  --dry-run           print every step, change nothing (no root needed)
  -h, --help          show this help and exit

Example:
  sudo deploy/gateway/install.sh --config gw-store-001-a.yaml --models-from /media/usb/models
EOF
}

die() { echo "install.sh: error: $*" >&2; exit 1; }
step() { echo "==> $*"; }
note() { echo "    $*"; }

# Run a command, or only print it with --dry-run.
run() {
  if [[ $DRY_RUN == 1 ]]; then echo "    [dry-run] $*"; else echo "    + $*"; "$@"; fi
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --config) CONFIG="${2:?--config needs a file}"; shift 2 ;;
      --models-from) MODELS_FROM="${2:?--models-from needs a folder}"; shift 2 ;;
      --source) SOURCE="${2:?--source needs a path}"; shift 2 ;;
      --python) PYTHON="${2:?--python needs an interpreter}"; shift 2 ;;
      --wheels) WHEELS="${2:?--wheels needs a folder}"; shift 2 ;;
      --unit) UNIT="${2:?--unit needs a file}"; shift 2 ;;
      --prefix) PREFIX="${2:?--prefix needs a folder}"; shift 2 ;;
      --no-venv) DO_VENV=0; shift ;;
      --no-start) DO_START=0; shift ;;
      --dry-run) DRY_RUN=1; shift ;;
      -h | --help) usage; exit 0 ;;
      *) usage >&2; die "unknown option: $1" ;;
    esac
  done
  PREFIX="${PREFIX%/}"
  ETC="$PREFIX/etc/mallpulse"
  STATE="$PREFIX/var/lib/mallpulse"
  OPT="$PREFIX/opt/mallpulse"
  UNIT_DIR="$PREFIX/etc/systemd/system"
  SYSTEM=1
  [[ -n $PREFIX ]] && SYSTEM=0
  return 0
}

preflight() {
  step "preflight"
  [[ -z $CONFIG || -f $CONFIG ]] || die "--config: no such file: $CONFIG"
  [[ -z $MODELS_FROM || -d $MODELS_FROM ]] || die "--models-from: no such folder: $MODELS_FROM"
  [[ -e $SOURCE ]] || die "--source: no such file or folder: $SOURCE"
  [[ -z $WHEELS || -d $WHEELS ]] || die "--wheels: no such folder: $WHEELS"
  [[ -f $UNIT ]] || die "systemd unit missing: $UNIT"
  if [[ $SYSTEM == 1 && $DRY_RUN == 0 && $EUID -ne 0 ]]; then
    die "run as root (sudo), or try --dry-run / --prefix DIR"
  fi
  if [[ $SYSTEM == 1 ]] && ! grep -Eqi '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release 2>/dev/null; then
    die "this installer supports Debian and Ubuntu only (see /etc/os-release)"
  fi
  note "prefix: ${PREFIX:-/}  source: $SOURCE  dry-run: $DRY_RUN"
}

# The first interpreter that is Python 3.11 or newer.
find_python() {
  local candidate
  for candidate in "$PYTHON" python3.13 python3.12 python3.11 python3; do
    [[ -n $candidate ]] || continue
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

install_packages() {
  step "apt packages (python3 >= 3.11 with venv, ca-certificates)"
  if [[ $SYSTEM == 0 ]]; then note "skipped: --prefix"; return; fi
  local pkgs=(ca-certificates)
  if PYTHON="$(find_python)"; then
    pkgs+=("$(basename "$PYTHON")-venv")
  else
    pkgs+=(python3.11 python3.11-venv)
    PYTHON=python3.11
  fi
  run apt-get update -q
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"
}

create_user() {
  step "system user '$RUN_USER'"
  if [[ $SYSTEM == 0 ]]; then note "skipped: --prefix"; return; fi
  if id -u "$RUN_USER" >/dev/null 2>&1; then
    note "exists"
  else
    run useradd --system --user-group --home-dir /var/lib/mallpulse --no-create-home \
      --shell /usr/sbin/nologin --comment "MallPulse edge agent" "$RUN_USER"
  fi
  if getent group video >/dev/null 2>&1; then run usermod -a -G video "$RUN_USER"; fi
}

# install -d with owner/group only when installing for real on the system.
make_dir() {
  local mode="$1" owner="$2" dir="$3"
  if [[ $SYSTEM == 1 ]]; then
    run install -d -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$dir"
  else
    run install -d -m "$mode" "$dir"
  fi
}

# Copy a file with mode and owner; reports "unchanged" when the target is identical.
put_file() {
  local mode="$1" owner="$2" src="$3" dst="$4"
  if [[ -f $dst ]] && cmp -s "$src" "$dst"; then note "unchanged: $dst"; return; fi
  if [[ $SYSTEM == 1 ]]; then
    run install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$src" "$dst"
  else
    run install -m "$mode" "$src" "$dst"
  fi
}

create_dirs() {
  step "directories"
  make_dir 0750 "root:$RUN_USER" "$ETC"
  make_dir 0750 "root:$RUN_USER" "$ETC/models"
  make_dir 0750 "$RUN_USER:$RUN_USER" "$STATE"
  make_dir 0750 "$RUN_USER:$RUN_USER" "$STATE/models"
  make_dir 0755 "root:root" "$OPT"
  make_dir 0755 "root:root" "$UNIT_DIR"
  make_dir 0755 "root:root" "$UNIT_DIR/$SERVICE.service.d"
}

install_venv() {
  step "virtual environment $OPT/venv with mallpulse[edge]"
  if [[ $DO_VENV == 0 ]]; then note "skipped: --no-venv"; return; fi
  if [[ -z $PYTHON ]] || ! command -v "$PYTHON" >/dev/null 2>&1; then
    PYTHON="$(find_python)" || PYTHON=""
  fi
  if [[ -z $PYTHON ]]; then
    [[ $DRY_RUN == 1 ]] || die "no Python 3.11+ found; install python3.11 or pass --python"
    PYTHON=python3.11
  fi
  local spec="${SOURCE}[edge]" options=()
  [[ -f $SOURCE/requirements/ci.txt ]] && options+=(-c "$SOURCE/requirements/ci.txt")
  [[ -n $WHEELS ]] && options+=(--no-index --find-links "$WHEELS")
  [[ -x $OPT/venv/bin/python ]] || run "$PYTHON" -m venv "$OPT/venv"
  [[ -n $WHEELS ]] || run "$OPT/venv/bin/python" -m pip install -q --upgrade pip
  run "$OPT/venv/bin/python" -m pip install -q --upgrade "${options[@]}" "$spec"
}

install_models() {
  step "model manifests and weights"
  local manifest weights
  for manifest in "$REPO_DIR"/models/*.yaml; do
    [[ -f $manifest ]] || continue
    put_file 0640 "root:$RUN_USER" "$manifest" "$ETC/models/$(basename "$manifest")"
  done
  if [[ -z $MODELS_FROM ]]; then
    note "no --models-from: copy the weights into $STATE/models yourself (sha256 is checked)"
    return
  fi
  for manifest in "$REPO_DIR"/models/*.yaml; do
    weights="$(sed -n 's/^file:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$manifest")"
    if [[ -f $MODELS_FROM/$weights ]]; then
      put_file 0640 "$RUN_USER:$RUN_USER" "$MODELS_FROM/$weights" "$STATE/models/$weights"
    else
      note "not in $MODELS_FROM: $weights (needed by $(basename "$manifest"))"
    fi
  done
}

install_config() {
  step "device config $ETC/edge.yaml"
  put_file 0640 "root:$RUN_USER" "$REPO_DIR/firmware-config/example-store.yaml" \
    "$ETC/edge.yaml.example"
  if [[ -z $CONFIG ]]; then
    if [[ -f $ETC/edge.yaml ]]; then
      note "kept: $ETC/edge.yaml"
    else
      note "none yet: write $ETC/edge.yaml (see edge.yaml.example), then start $SERVICE"
    fi
    return
  fi
  if [[ $DO_VENV == 1 && -x $OPT/venv/bin/mallpulse ]]; then
    run "$OPT/venv/bin/mallpulse" config validate "$CONFIG"
  fi
  if [[ -f $ETC/edge.yaml ]] && ! cmp -s "$CONFIG" "$ETC/edge.yaml"; then
    note "kept the existing $ETC/edge.yaml; the new one is $ETC/edge.yaml.new (compare, then move)"
    put_file 0640 "root:$RUN_USER" "$CONFIG" "$ETC/edge.yaml.new"
  else
    put_file 0640 "root:$RUN_USER" "$CONFIG" "$ETC/edge.yaml"
  fi
}

# The drop-in ties the project's unit to this layout (paths, user, model folder).
write_dropin() {
  local tmp
  tmp="$(mktemp)"
  cat >"$tmp" <<EOF
# Written by deploy/gateway/install.sh: this installation's paths and user.
[Service]
User=$RUN_USER
Group=$RUN_USER
Environment=MALLPULSE_SHARED=/var/lib/mallpulse
ExecStart=
ExecStart=/opt/mallpulse/venv/bin/mallpulse edge run --config /etc/mallpulse/edge.yaml
EOF
  put_file 0644 "root:root" "$tmp" "$UNIT_DIR/$SERVICE.service.d/10-install.conf"
  rm -f "$tmp"
}

install_unit() {
  step "systemd unit $SERVICE"
  put_file 0644 "root:root" "$UNIT" "$UNIT_DIR/$SERVICE.service"
  write_dropin
  if [[ $SYSTEM == 0 ]]; then note "skipped systemctl: --prefix"; return; fi
  run systemctl daemon-reload
  run systemctl enable "$SERVICE"
  if [[ $DO_START == 0 ]]; then note "not started: --no-start"; return; fi
  if [[ ! -f $ETC/edge.yaml && $DRY_RUN == 0 ]]; then
    note "not started: $ETC/edge.yaml is missing"
    return
  fi
  run systemctl restart "$SERVICE"
  note "logs: journalctl -u $SERVICE -f"
}

main() {
  parse_args "$@"
  preflight
  install_packages
  create_user
  create_dirs
  install_venv
  install_models
  install_config
  install_unit
  if [[ $DRY_RUN == 1 ]]; then step "done (dry run: nothing was changed)"; else step "done"; fi
}

main "$@"
