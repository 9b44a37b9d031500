#!/usr/bin/env bash
# A background queue for long CPU runs on a 2-core machine, where two heavy jobs at once stall each other.
#   scripts/queue.sh start          run runs/queue/NN-name.sh one at a time, lowest NN first, in the background;
#                                   each job's output is appended to NN-name.log (a job rerun after a cut keeps
#                                   its earlier invocations' output, wall times included) and it is renamed
#                                   NN-name.done.RC after
#   scripts/queue.sh paused CMD...  run CMD (in the current directory) with the queue's processes stopped
#                                   (SIGSTOP), so timings and tests taken meanwhile are not void; they
#                                   continue (SIGCONT) however CMD ends
# After the machine was cut mid-job, rename runs/queue/*.sh.running back to *.sh: every job's `promptgd` commands
# resume from their checkpoints.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
queue=$root/runs/queue
pidfile=$queue/runner.pid
case ${1:-} in
  start)
    mkdir -p "$queue"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "queue.sh: a runner is already running (pid $(cat "$pidfile"))" >&2; exit 2
    fi
    cd "$root"
    # setsid makes the runner the leader of its own process group, so `paused` can stop it and every job it spawned.
    setsid nohup bash -c '
      echo $$ > '"$pidfile"'
      while true; do
        job=$(ls '"$queue"'/*.sh 2>/dev/null | sort | head -n 1)
        if [ -z "$job" ]; then sleep 30; continue; fi
        mv "$job" "$job.running"
        rc=0; bash "$job.running" >> "${job%.sh}.log" 2>&1 || rc=$?
        mv "$job.running" "${job%.sh}.done.$rc"
      done' > "$queue/runner.log" 2>&1 < /dev/null &
    ;;
  paused)
    shift
    [ $# -gt 0 ] || { echo "queue.sh paused: no command given" >&2; exit 2; }
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      group=$(cat "$pidfile")
      kill -STOP -- "-$group"
      trap 'kill -CONT -- "-$group"' EXIT
    fi
    "$@"
    ;;
  *) echo "usage: scripts/queue.sh start | paused CMD..." >&2; exit 2 ;;
esac
