#!/usr/bin/env bash
# Verifies the container image as far as a machine without a Docker engine can.
#
#   sudo scripts/container-smoke.sh            # builds the release binary first
#   sudo SKIP_BUILD=1 scripts/container-smoke.sh   # reuses target/release/channel-bridge
#                                   (after sudo: sudo drops the caller's environment)
#
# What it does, and why this way: no Docker engine runs here, so the image cannot be built
# or run as such. Instead the runtime stage of ./Dockerfile is reproduced step by step on a
# Debian bookworm minbase root made with debootstrap (what debian:bookworm-slim is made
# from): its RUN steps run in a chroot, its COPY steps copy the release binary (built as
# the build stage does, with `cargo build --release --locked --no-default-features`) and the config, its ENV,
# USER and WORKDIR are applied. The steps are read from the Dockerfile itself, so a change
# there is what gets checked. Then, as the image's non-root user, with the image's
# environment, in fresh PID, network and mount namespaces (the daemon is PID 1, listens on
# the image's 0.0.0.0:8080 without touching the host's ports):
#   - check-config passes; the HEALTHCHECK command fails before start, passes after;
#   - a signed webhook is stored (200), read back through the API, and a rep reply is
#     delivered to an in-house app listening in the same network namespace;
#   - the database lands on the volume folder, owned by the non-root user;
#   - SIGTERM to PID 1 drains and exits 0; a restart finds the data again.
# It also checks that the runtime root has no build tools and that every library the
# binary needs is there. What it cannot check is printed at the end (and listed in the
# README, "Verifying the image without Docker").
#
# Needs root (debootstrap, chroot, unshare), debootstrap, curl, python3, and the Debian
# mirror for the first run (the base is cached under target/container-smoke/).

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${SMOKE_DIR:-$ROOT/target/container-smoke}
BASE=$WORK/base
RUNTIME=$WORK/runtime
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The PATH of the debian images, which the exec-form commands are resolved on.
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

failures=0
pass() { printf '  ok    %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*"; failures=$((failures + 1)); }
step() { printf '\n== %s\n' "$*"; }
die() { printf 'container-smoke: %s\n' "$*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and unshare need it)"
for tool in debootstrap unshare nsenter chroot curl python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install debootstrap util-linux curl python3)"
done

mounted=()
daemon_pid=
receiver_pid=
cleanup() {
    [ -n "$receiver_pid" ] && kill "$receiver_pid" 2>/dev/null || true
    [ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null || true
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount -l "${mounted[$i]}" 2>/dev/null || true
    done
}
trap cleanup EXIT

# ---- the build stage ------------------------------------------------------------------
step "Build stage: cargo build --release --locked --no-default-features, with the stage's ENV"
# The build stage's ENV lines (e.g. the release profile's settings), as NAME=VALUE words.
build_env=$(python3 - "$ROOT/Dockerfile" <<'PY'
import re, sys
text = re.sub(r"\\\n", " ", open(sys.argv[1]).read())
froms = [m.start() for m in re.finditer(r"(?m)^FROM ", text)]
for line in text[froms[0]:froms[-1]].splitlines():
    if line.startswith("ENV "):
        print(" ".join(line.split()[1:]))
PY
)
if [ -z "${SKIP_BUILD:-}" ]; then
    # A target folder of its own: other profile settings than a developer's target/release.
    CARGO_TARGET=$WORK/cargo-target
    # shellcheck disable=SC2086 # NAME=VALUE words
    (cd "$ROOT" && env $build_env cargo build --release --locked --no-default-features --bin channel-bridge \
        --target-dir "$CARGO_TARGET")
    pass "build-stage ENV: ${build_env:-none}"
    BINARY=$CARGO_TARGET/release/channel-bridge
    [ -x "$BINARY" ] || die "no release binary at $BINARY"
else
    # SKIP_BUILD=1 (README): the developer's own release build, as it is, so a rerun takes
    # seconds; it was not built with the build stage's ENV, which the line below names.
    BINARY=$ROOT/target/release/channel-bridge
    [ -x "$BINARY" ] || die "SKIP_BUILD=1 but no release binary at $BINARY (cargo build --release first)"
    pass "SKIP_BUILD=1: reusing $BINARY (build-stage ENV not applied: ${build_env:-none})"
fi
pass "release binary: $(du -h "$BINARY" | cut -f1)"

# ---- the base -------------------------------------------------------------------------
step "Base: Debian bookworm minbase (debootstrap), cached in $BASE"
if [ ! -x "$BASE/usr/bin/apt-get" ]; then
    rm -rf "$BASE"
    debootstrap --variant=minbase bookworm "$BASE" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || die "debootstrap failed; see $WORK/debootstrap.log"
    rm -rf "$BASE"/var/lib/apt/lists/* "$BASE"/var/cache/apt/*.bin
fi
# As the debian:*-slim images are made: no downloaded packages left, apt keeps no caches,
# dpkg installs no docs.
rm -f "$BASE"/var/cache/apt/archives/*.deb
cat >"$BASE/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat >"$BASE/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
pass "base: $(du -sh "$BASE" | cut -f1)"

# ---- the runtime stage, step by step --------------------------------------------------
step "Runtime stage: the Dockerfile's steps on a copy of the base"
rm -rf "$RUNTIME"
cp -a "$BASE" "$RUNTIME"
base_size=$(du -sk "$BASE" | cut -f1)

# The runtime stage (after the last FROM) as one instruction per line, continuations
# joined, each printed as KEYWORD<TAB>ARGUMENTS.
stage=$(python3 - "$ROOT/Dockerfile" <<'EOF'
import sys
lines, current = [], ""
for raw in open(sys.argv[1]):
    line = raw.rstrip("\n")
    if not current and (not line.strip() or line.lstrip().startswith("#")):
        continue
    if line.lstrip().startswith("#"):
        continue
    if line.endswith("\\"):
        current += line[:-1] + " "
        continue
    lines.append(current + line)
    current = ""
last = max(i for i, l in enumerate(lines) if l.split()[0].upper() == "FROM")
for l in lines[last:]:
    keyword, _, rest = l.strip().partition(" ")
    print(f"{keyword.upper()}\t{' '.join(rest.split())}")
EOF
)

mount_for_run() {
    mount -t proc proc "$RUNTIME/proc" && mounted+=("$RUNTIME/proc")
    mount --bind /dev "$RUNTIME/dev" && mounted+=("$RUNTIME/dev")
    cp /etc/resolv.conf "$RUNTIME/etc/resolv.conf"
}
unmount_after_run() {
    umount -l "$RUNTIME/dev" "$RUNTIME/proc"
    mounted=()
}

env_vars=("PATH=$IMAGE_PATH" "HOME=/root")
user=root
workdir=/
healthcheck=
entrypoint=
cmd=
mount_for_run
while IFS=$'\t' read -r keyword args; do
    case $keyword in
    FROM) pass "FROM $args (here: the debootstrap base)" ;;
    RUN)
        if chroot "$RUNTIME" /usr/bin/env -i "${env_vars[@]}" DEBIAN_FRONTEND=noninteractive \
            /bin/sh -c "$args" >>"$WORK/runtime-steps.log" 2>&1; then
            pass "RUN ${args:0:70}…"
        else
            fail "RUN ${args:0:70}… (see $WORK/runtime-steps.log)"
        fi
        ;;
    COPY)
        read -r -a parts <<<"$args"
        dest=${parts[-1]}
        if [[ ${parts[0]} == --from=build ]]; then
            [ "${parts[1]}" = /src/target/release/channel-bridge ] \
                || fail "COPY from the build stage of an unexpected path: ${parts[1]}"
            src=$BINARY
        else
            src=$ROOT/${parts[0]}
        fi
        mkdir -p "$(dirname "$RUNTIME$dest")"
        cp "$src" "$RUNTIME$dest" && pass "COPY $args"
        ;;
    ENV)
        for assignment in $args; do env_vars+=("$assignment"); done
        pass "ENV $args"
        ;;
    USER) user=$args; pass "USER $args" ;;
    WORKDIR) workdir=$args; mkdir -p "$RUNTIME$workdir"; pass "WORKDIR $args" ;;
    HEALTHCHECK) healthcheck=${args#*CMD }; pass "HEALTHCHECK $args" ;;
    ENTRYPOINT) entrypoint=$args; pass "ENTRYPOINT $args" ;;
    CMD) cmd=$args; pass "CMD $args" ;;
    EXPOSE | VOLUME) pass "$keyword $args (metadata: not checkable without an engine)" ;;
    *) fail "unhandled instruction $keyword $args" ;;
    esac
done <<<"$stage"
unmount_after_run
rm -f "$RUNTIME/etc/resolv.conf"

json_args() { python3 -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])))' "$1"; }
mapfile -t entry < <(json_args "$entrypoint")
mapfile -t command < <(json_args "$cmd")
mapfile -t probe < <(json_args "$healthcheck")

uid=$(chroot "$RUNTIME" id -u "$user") || die "no user $user in the runtime root"
gid=$(chroot "$RUNTIME" id -g "$user")
[ "$uid" != 0 ] && pass "USER $user is not root (uid $uid, gid $gid)" || fail "the image runs as root"

step "Runtime root: small, no build tools, every library there"
added=$(($(du -sk "$RUNTIME" | cut -f1) - base_size))
pass "the runtime stage adds $((added / 1024)) MiB to the base (binary and CA certificates)"
for tool in cargo rustc gcc cc ld make git; do
    if chroot "$RUNTIME" /usr/bin/env -i "PATH=$IMAGE_PATH" sh -c "command -v $tool" >/dev/null 2>&1; then
        fail "build tool in the runtime root: $tool"
    fi
done
pass "no cargo, rustc, gcc, cc, ld, make or git"
if missing=$(chroot "$RUNTIME" ldd /usr/local/bin/channel-bridge 2>&1 | grep 'not found'); then
    fail "libraries missing: $missing"
else
    pass "ldd: every shared library resolves in the runtime root"
fi
[ -s "$RUNTIME/etc/ssl/certs/ca-certificates.crt" ] && pass "CA certificates installed" \
    || fail "no CA certificates (TLS to the platforms would fail)"
volume_owner=$(stat -c %u:%g "$RUNTIME/var/lib/channel-bridge")
[ "$volume_owner" = "$uid:$gid" ] && pass "/var/lib/channel-bridge owned by $uid:$gid" \
    || fail "/var/lib/channel-bridge owned by $volume_owner, not $uid:$gid"

# ---- running it -----------------------------------------------------------------------
# As `docker exec` would: the image's user, environment and working folder.
as_image_user() {
    chroot --userspec="$uid:$gid" "$RUNTIME" /usr/bin/env -i -C "$workdir" "${env_vars[@]}" "$@"
}
# The same, inside the running container's namespaces.
in_container() {
    nsenter --target "$daemon_pid" --net --pid --mount -- \
        chroot --userspec="$uid:$gid" "$RUNTIME" /usr/bin/env -i -C "$workdir" "${env_vars[@]}" "$@"
}
# A host tool in the container's network (the container has no curl).
in_network() { nsenter --target "$daemon_pid" --net -- "$@"; }

step "Safe defaults: no config and no dev credentials in the image"
[ ! -e "$RUNTIME/etc/channel-bridge/config.toml" ] && pass "the image carries no config file" \
    || fail "the image carries a config file (dev credentials?)"
if out=$(as_image_user "${entry[@]}" "${command[@]}" 2>&1); then
    fail "started with no config: $out"
elif [[ $out == *'no config file at /etc/channel-bridge/config.toml'* ]]; then
    pass "without a config it exits at once, saying what it needs"
else
    fail "without a config: $out"
fi
[ -z "$(ls -A "$RUNTIME/var/lib/channel-bridge")" ] && pass "and leaves the volume empty" \
    || fail "a refused start wrote to the volume: $(ls -A "$RUNTIME/var/lib/channel-bridge")"
# As `docker run -v ./config/default.toml:/etc/channel-bridge/config.toml:ro`: the demo
# config, whose published credentials are refused on 0.0.0.0 without the opt-in.
install -m 0644 "$ROOT/config/default.toml" "$RUNTIME/etc/channel-bridge/config.toml"
if out=$(as_image_user "${entry[@]}" "${command[@]}" 2>&1); then
    fail "served the published dev credentials on 0.0.0.0: $out"
elif [[ $out == *'refusing to listen on 0.0.0.0:8080'*'api.tokens "dev-admin".sha256'* ]]; then
    pass "the demo config on 0.0.0.0 is refused, naming the published keys"
else
    fail "the demo config on 0.0.0.0: $out"
fi
env_vars+=("CHANNEL_BRIDGE_ALLOW_DEV_CREDENTIALS=true")

step "As the image's user, before start"
if out=$(as_image_user "${entry[@]}" check-config 2>&1); then
    pass "check-config: $out"
else
    fail "check-config: $out"
fi

start_container() {
    : >"$WORK/container.log"
    # PID 1 in new PID, network and mount namespaces: unshare forks, the shell brings up
    # the loopback and execs chroot, which execs env, which execs the entrypoint.
    unshare --pid --net --mount --fork --mount-proc="$RUNTIME/proc" -- sh -c '
        ip link set lo up
        user=$0 root=$1
        shift
        exec chroot --userspec="$user" "$root" /usr/bin/env -i "$@"
    ' "$uid:$gid" "$RUNTIME" -C "$workdir" "${env_vars[@]}" "${entry[@]}" "${command[@]}" \
        >>"$WORK/container.log" 2>&1 &
    unshare_pid=$!
    daemon_pid=
    for _ in $(seq 100); do
        daemon_pid=$(ps -o pid= --ppid "$unshare_pid" | tr -d ' ' || true)
        [ -n "$daemon_pid" ] && break
        sleep 0.1
    done
    [ -n "$daemon_pid" ] || die "the container did not start; see $WORK/container.log"
}

wait_healthy() {
    for _ in $(seq 100); do
        if in_container "${probe[@]}" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    return 1
}

step "Container: the entrypoint as PID 1"
start_container
if wait_healthy; then
    pass "HEALTHCHECK ${probe[*]}: exit 0 once the daemon is up"
else
    fail "HEALTHCHECK never passed; log:"; cat "$WORK/container.log"
fi
pid1=$(in_container /bin/sh -c 'cat /proc/1/comm' 2>/dev/null || true)
[ "$pid1" = channel-bridge ] && pass "PID 1 in the container is channel-bridge" \
    || fail "PID 1 is ${pid1:-unknown}, not channel-bridge"
user_of_1=$(awk '/^Uid:/ {print $2}' "/proc/$daemon_pid/status")
[ "$user_of_1" = "$uid" ] && pass "it runs as uid $uid" || fail "it runs as uid $user_of_1"
if in_network curl -sf http://127.0.0.1:8080/metrics | grep -q '^channel_bridge_build_info'; then
    pass "listens on 0.0.0.0:8080 (the image's ENV); /metrics answers"
else
    fail "no /metrics on 127.0.0.1:8080 in the container"
fi

step "A webhook round trip with the mounted demo config (channel demo)"
# The in-house app's receiver, at the demo channel's outbound_url, in the same network.
# Not through the function: $! must be the receiver itself (nsenter execs python3).
nsenter --target "$daemon_pid" --net -- python3 -c '
import http.server as h, sys
class R(h.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        open(sys.argv[1], "ab").write(body + b"\n")
        self.send_response(200); self.send_header("content-type", "application/json"); self.end_headers()
        self.wfile.write(b"{\"id\": \"app-out-1\"}")
    def log_message(self, *a): pass
h.HTTPServer(("127.0.0.1", 9000), R).serve_forever()' "$WORK/received.jsonl" &
receiver_pid=$!
: >"$WORK/received.jsonl"
body='{"type":"message","id":"smoke-1","from":{"id":"user-1","name":"Ana"},"parts":[{"type":"text","text":"Hello from the smoke test"}]}'
in_container "${entry[@]}" sign --body "$body" >"$WORK/headers"
answer=$(in_network curl -s -H @"$WORK/headers" --data "$body" http://127.0.0.1:8080/hooks/demo)
if [[ $answer == *'"stored":1'* ]]; then pass "POST /hooks/demo: $answer"; else fail "POST /hooks/demo: $answer"; fi
token="Authorization: Bearer dev-admin-token"
conversation=$(in_network curl -s -H "$token" http://127.0.0.1:8080/api/v1/conversations \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])' 2>/dev/null || true)
[ -n "$conversation" ] && pass "GET /api/v1/conversations: $conversation" || fail "no conversation listed"
status=$(in_network curl -s -o /dev/null -w '%{http_code}' -H "$token" -H 'content-type: application/json' \
    -d '{"parts":[{"type":"text","text":"Reply from the smoke test"}]}' \
    "http://127.0.0.1:8080/api/v1/conversations/$conversation/messages")
[ "$status" = 202 ] && pass "reply queued (202)" || fail "reply answered $status"
for _ in $(seq 100); do grep -q 'Reply from the smoke test' "$WORK/received.jsonl" && break; sleep 0.1; done
grep -q 'Reply from the smoke test' "$WORK/received.jsonl" && pass "the reply reached the in-house app" \
    || fail "the reply never reached the in-house app"
db=$RUNTIME/var/lib/channel-bridge/channel-bridge.db
[ -f "$db" ] && [ "$(stat -c %u "$db")" = "$uid" ] && pass "the database is on the volume, owned by uid $uid" \
    || fail "no database owned by uid $uid at /var/lib/channel-bridge/channel-bridge.db"

step "SIGTERM to PID 1"
kill -TERM "$daemon_pid"
if wait "$unshare_pid"; then
    pass "drained and exited 0"
else
    fail "exit status $? after SIGTERM"
fi
daemon_pid=
grep -q 'SIGTERM: draining' "$WORK/container.log" && grep -q 'Stopped.' "$WORK/container.log" \
    && pass "the log shows the drain" || fail "no drain in the log"
probe_after=0
# In an empty network of its own, so nothing on the host's port 8080 can answer.
unshare --net -- chroot --userspec="$uid:$gid" "$RUNTIME" /usr/bin/env -i -C "$workdir" \
    "${env_vars[@]}" "${probe[@]}" >/dev/null 2>&1 || probe_after=$?
[ "$probe_after" != 0 ] && pass "HEALTHCHECK exits $probe_after when nothing answers" \
    || fail "HEALTHCHECK passed with no daemon"

step "Restart on the same volume"
start_container
wait_healthy || fail "not healthy after restart"
count=$(in_network curl -s -H "$token" http://127.0.0.1:8080/api/v1/conversations \
    | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))' 2>/dev/null || echo 0)
[ "$count" = 1 ] && pass "the conversation is still there" || fail "$count conversations after restart"
kill -TERM "$daemon_pid"
wait "$unshare_pid" || fail "exit status $? after the second SIGTERM"
daemon_pid=
kill "$receiver_pid" 2>/dev/null || true
receiver_pid=

# ---- the real image, where podman can run containers ---------------------------------
podman_run() { CONTAINERS_CONF=$WORK/containers.conf podman --runtime runc "$@"; }
podman_ready() {
    command -v podman >/dev/null && command -v runc >/dev/null || return 1
    # This machine's limits and hybrid cgroups: no ulimits of podman's own, and runc
    # (crun refuses hybrid cgroups).
    printf '[containers]\ndefault_ulimits = []\n' >"$WORK/containers.conf"
    podman_run image exists localhost/channel-bridge-smoke-base \
        || tar -C "$BASE" -c . | podman_run import - localhost/channel-bridge-smoke-base >/dev/null
    podman_run run --rm --network none localhost/channel-bridge-smoke-base true >/dev/null 2>&1
}

if [ -n "${SKIP_PODMAN:-}" ]; then
    printf '\n== podman: skipped (SKIP_PODMAN)\n'
elif ! podman_ready; then
    printf '\n== podman: cannot run containers here (apt-get install podman runc); the image itself was not built\n'
else
    step "Image: podman build of the Dockerfile's runtime stage on the same base"
    context=$WORK/podman-context
    rm -rf "$context" && mkdir -p "$context"
    cp "$BINARY" "$context/channel-bridge"
    # The runtime stage verbatim, but FROM the local base and COPY from the context.
    python3 - "$ROOT/Dockerfile" >"$context/Containerfile" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
stage = text[[m.start() for m in re.finditer(r"(?m)^FROM ", text)][-1]:]
stage = re.sub(r"(?m)^FROM \S+", "FROM localhost/channel-bridge-smoke-base", stage, count=1)
stage = stage.replace("COPY --from=build /src/target/release/channel-bridge ", "COPY channel-bridge ")
print(stage)
PY
    image=localhost/channel-bridge:smoke
    # Docker's image format: OCI images have no HEALTHCHECK.
    if podman_run build --format docker --network host -t "$image" -f "$context/Containerfile" "$context" \
        >"$WORK/podman-build.log" 2>&1; then
        pass "podman build (log: $WORK/podman-build.log)"
    else
        fail "podman build; see $WORK/podman-build.log"
    fi
    inspect() { podman_run image inspect --format "$1" "$image"; }
    [ "$(inspect '{{.Config.User}}')" = channel-bridge ] && pass "User: channel-bridge" \
        || fail "User: $(inspect '{{.Config.User}}')"
    inspect '{{json .Config.ExposedPorts}}' | grep -q '"8080/tcp"' && pass "ExposedPorts: 8080/tcp" \
        || fail "ExposedPorts: $(inspect '{{json .Config.ExposedPorts}}')"
    inspect '{{json .Config.Volumes}}' | grep -q '/var/lib/channel-bridge' \
        && pass "Volumes: /var/lib/channel-bridge" || fail "Volumes: $(inspect '{{json .Config.Volumes}}')"
    health=$(inspect '{{json .HealthCheck.Test}}')
    [[ $health == *'"channel-bridge","healthcheck"'* ]] && pass "HealthCheck: $health" \
        || fail "HealthCheck: $health"
    base_bytes=$(podman_run image inspect --format '{{.Size}}' localhost/channel-bridge-smoke-base)
    image_bytes=$(inspect '{{.Size}}')
    pass "image $((image_bytes / 1048576)) MiB, of which the runtime stage adds $(((image_bytes - base_bytes) / 1048576)) MiB"

    podman_run rm -f cb-smoke >/dev/null 2>&1 || true
    podman_run volume rm -f cb-smoke-data >/dev/null 2>&1 || true
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    # The image has no config: mount the demo one, with the opt-in its published
    # credentials need on 0.0.0.0.
    podman_run run -d --name cb-smoke -p "127.0.0.1:$port:8080" \
        -v cb-smoke-data:/var/lib/channel-bridge \
        -v "$ROOT/config/default.toml:/etc/channel-bridge/config.toml:ro" \
        -e CHANNEL_BRIDGE_ALLOW_DEV_CREDENTIALS=true "$image" >/dev/null
    healthy=
    for _ in $(seq 100); do
        if podman_run healthcheck run cb-smoke >/dev/null 2>&1; then healthy=1; break; fi
        sleep 0.2
    done
    [ -n "$healthy" ] && pass "podman healthcheck run: healthy (the image's HEALTHCHECK)" \
        || fail "never healthy; $(podman_run logs cb-smoke 2>&1 | tail -5)"
    [ "$(podman_run exec cb-smoke cat /proc/1/comm)" = channel-bridge ] \
        && pass "PID 1 is channel-bridge" || fail "PID 1 is not channel-bridge"
    owner=$(podman_run exec cb-smoke stat -c %u:%g /var/lib/channel-bridge)
    [ "$owner" = "$uid:$gid" ] && pass "the new named volume is seeded with owner $owner" \
        || fail "the named volume is owned by $owner"
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && pass "published port: /healthz on 127.0.0.1:$port" \
        || fail "nothing on the published port"
    podman_run exec cb-smoke channel-bridge sign --body "$body" >"$WORK/headers"
    answer=$(curl -s -H @"$WORK/headers" --data "$body" "http://127.0.0.1:$port/hooks/demo")
    [[ $answer == *'"stored":1'* ]] && pass "POST /hooks/demo through the published port: stored" \
        || fail "POST /hooks/demo: $answer"
    podman_run stop -t 15 cb-smoke >/dev/null
    code=$(podman_run inspect --format '{{.State.ExitCode}}' cb-smoke)
    [ "$code" = 0 ] && pass "podman stop (SIGTERM): exit code 0" || fail "podman stop: exit code $code"
    podman_run logs cb-smoke 2>&1 | grep -q 'SIGTERM: draining' && pass "the log shows the drain" \
        || fail "no drain in the container log"
    podman_run start cb-smoke >/dev/null
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
    again=$(curl -s -H @"$WORK/headers" --data "$body" "http://127.0.0.1:$port/hooks/demo")
    [[ $again == *'"duplicates":1'* ]] && pass "restarted on the volume: the webhook is known (duplicate)" \
        || fail "after restart: $again"
    podman_run stop -t 15 cb-smoke >/dev/null
    podman_run rm -f cb-smoke >/dev/null
    podman_run volume rm -f cb-smoke-data >/dev/null
    podman_checked=1
fi

printf '\n== Not checked here\n'
cat <<'EOF'
  - The build stage as Docker runs it: FROM rust:1-bookworm cannot be pulled here, so the
    binary comes from the same command on the host's toolchain, on the same Debian release.
  - The exact debian:bookworm-slim root: here the debootstrap minbase it is made from.
EOF
if [ -n "${podman_checked:-}" ]; then
    cat <<'EOF'
  - Docker Engine itself: podman with runc stood in (same OCI image, HEALTHCHECK command,
    named-volume seeding, port publishing, stop with SIGTERM); not dockerd's health
    scheduling (interval, retries, start period) or `docker stop`'s SIGKILL after -t.
EOF
else
    cat <<'EOF'
  - The image as an image (podman could not run containers): its metadata (USER, EXPOSE,
    VOLUME, HEALTHCHECK), health scheduling, named-volume seeding, port publishing and
    `docker stop`. The chroot run above reproduces the same steps and checks.
EOF
fi

if [ "$failures" -gt 0 ]; then
    printf '\ncontainer-smoke: %d check(s) failed\n' "$failures"
    exit 1
fi
printf '\ncontainer-smoke: all checks passed\n'
