# Sourced by the scripts: installs Debian packages that are missing, once.
#   need_command CMD PACKAGE    queue PACKAGE when CMD is not on the PATH
#   need_file PATH PACKAGE      queue PACKAGE when PATH does not exist
#   install_needed WHAT         install what was queued (with sudo when not root)
# Building sg always needs protoc and its well-known types: the etcd client's gRPC code is
# generated at build time (need_build_tools queues them).

_sg_need=()
need_command() { command -v "$1" >/dev/null 2>&1 || _sg_need+=("$2"); }
need_file() { [ -e "$1" ] || _sg_need+=("$2"); }
need_build_tools() {
  need_command protoc protobuf-compiler
  need_file /usr/include/google/protobuf/timestamp.proto libprotobuf-dev
}
install_needed() {
  [ ${#_sg_need[@]} -gt 0 ] || return 0
  echo "==> installing ${_sg_need[*]} ($1)"
  local sudo_=""
  [ "$(id -u)" -ne 0 ] && sudo_="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_ apt-get update -qq
  $sudo_ apt-get install -y -qq --no-install-recommends "${_sg_need[@]}" >/dev/null
  _sg_need=()
}
