#!/usr/bin/env bash
# Docker Engine for the Docker test: `engine.sh start` makes a daemon answer, `engine.sh stop` stops it.
#
#   start  An engine that already answers is used as it is (and never stopped here). Otherwise
#          (root only) Debian's docker.io is installed when dockerd is missing, and dockerd is
#          started in the background; its pid goes to $STATE_DIR/dockerd.pid, its log to
#          $STATE_DIR/dockerd.log. Exit 3 when no engine can be had, with the reason on stderr and
#          in $STATE_DIR/no-engine.txt.
#   stop   Stops the dockerd whose pid `start` wrote (by that pid, nothing else); no pid file, nothing to do.
#
# STATE_DIR defaults to test-artifacts/docker in the checkout.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE_DIR="${STATE_DIR:-$ROOT/test-artifacts/docker}"
PIDFILE="$STATE_DIR/dockerd.pid"
LOG="$STATE_DIR/dockerd.log"
START_TIMEOUT_S="${DOCKERD_START_TIMEOUT_S:-60}"

say() { echo "[engine] $*" >&2; }
cannot() { say "НЕТ ДВИЖКА DOCKER: $*"; echo "$*" >"$STATE_DIR/no-engine.txt"; exit 3; }

answers() { timeout 20 docker info >/dev/null 2>"$STATE_DIR/docker-info.err"; }
ours() { [[ -f $PIDFILE && $(cat "/proc/$(cat "$PIDFILE")/comm" 2>/dev/null) == dockerd ]]; }
why_not() { tail -n 1 "$STATE_DIR/docker-info.err" 2>/dev/null | cut -c1-200; }

install_engine() {
    [[ $(id -u) == 0 ]] || cannot "dockerd не установлен, а ставить пакеты может только root (sudo make test-docker)"
    command -v apt-get >/dev/null || cannot "dockerd не установлен и нет apt-get: поставьте Docker Engine вручную"
    say "installing docker.io and iptables (apt)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends docker.io iptables; } \
        >"$STATE_DIR/apt-engine.log" 2>&1 \
        || cannot "apt-get install docker.io не удался (журнал: $STATE_DIR/apt-engine.log): $(tail -n 3 "$STATE_DIR/apt-engine.log" | tr '\n' ' ')"
}

start() {
    mkdir -p "$STATE_DIR"
    rm -f "$STATE_DIR/no-engine.txt"
    command -v docker >/dev/null || [[ $(id -u) != 0 ]] || install_engine
    if answers; then
        if ours; then
            say "dockerd pid $(cat "$PIDFILE") (started earlier by this script) answers; stopped afterwards"
        else
            rm -f "$PIDFILE"
            say "using the engine that already runs ($(docker info --format '{{.ServerVersion}}' 2>/dev/null)); it is not stopped afterwards"
        fi
        return 0
    fi
    if ours; then
        say "dockerd pid $(cat "$PIDFILE") (started earlier by this script) does not answer yet"
    else
        rm -f "$PIDFILE"
        command -v dockerd >/dev/null || install_engine
        command -v dockerd >/dev/null || cannot "dockerd не найден и после установки"
        [[ $(id -u) == 0 ]] || cannot "демон Docker не отвечает ($(why_not)), а запустить dockerd может только root"
        if [[ -S /var/run/docker.sock ]] && pgrep -x dockerd >/dev/null; then
            cannot "dockerd уже запущен кем-то другим, но не отвечает (docker info); его этот скрипт не трогает"
        fi
        say "starting dockerd (log: $LOG)"
        # Its own session: a Ctrl+C in the terminal reaches the test, which then stops dockerd itself. No inherited
        # descriptor beyond stdio: a caller's `flock /tmp/docker.lock` must end with the caller, not with dockerd.
        (
            for fd in /proc/$BASHPID/fd/*; do
                fd=${fd##*/}
                ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
            done
            exec setsid nohup dockerd >"$LOG" 2>&1 </dev/null
        ) &
        echo $! >"$PIDFILE"
        sleep 0.5
        ours || pgrep -n -x dockerd >"$PIDFILE" || true  # setsid forked: the newest dockerd is ours
    fi
    local pid; pid="$(cat "$PIDFILE")"
    for ((i = 0; i < START_TIMEOUT_S; i++)); do
        if answers; then
            say "dockerd pid $pid answers after ${i}s ($(docker info --format '{{.ServerVersion}} {{.Driver}} cgroup v{{.CgroupVersion}}'))"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            cannot "dockerd завершился при запуске: $(tail -n 5 "$LOG" | tr '\n' ' ')"
        fi
        sleep 1
    done
    stop
    cannot "dockerd не ответил за ${START_TIMEOUT_S} с: $(tail -n 5 "$LOG" | tr '\n' ' ')"
}

stop() {
    [[ -f $PIDFILE ]] || { say "no dockerd started by this script: nothing to stop"; return 0; }
    local pid; pid="$(cat "$PIDFILE")"
    if ! ours; then
        say "pid $pid from $PIDFILE is no longer a dockerd: nothing to stop"
    elif kill -0 "$pid" 2>/dev/null; then
        say "stopping dockerd pid $pid"
        kill -TERM "$pid"
        for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -0 "$pid" 2>/dev/null && { say "dockerd pid $pid still alive after 60 s: SIGKILL"; kill -KILL "$pid"; }
    fi
    rm -f "$PIDFILE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
