# kill -9 trials of long `scuse io` runs, shared by the write tests
# (test_qcow2_write.sh, test_vhd_write.sh, test_vmdk_write.sh): each test
# makes its image and judges what is left; the run and the kill are here.
#
#   crash_reset                   zero the counters (CRASH_PLANNED, CRASH_KILLED)
#   crash_begin T LABEL SEED CMDS read the lib/wsim.py command file CMDS,
#                                 choose where trial T's kill comes (trial 0:
#                                 never; otherwise right after the k-th of the
#                                 n result lines, 3 <= k < n - 3, from SEED)
#                                 and open its case
#   crash_io IMG                  run `scuse io` on IMG with those commands on
#                                 its stdin (a fifo): only the first k + 1..4
#                                 (from SEED) are sent, so the kill lands
#                                 while commands are in flight or awaited,
#                                 never after the run ended, however loaded
#                                 the machine; its stdout line-buffered
#                                 (stdbuf -oL) through a fifo this shell reads
#                                 line by line, the kill right after the k-th
#                                 line without polling; out.txt gets the
#                                 lines, err.txt stderr; CRASH_RC its status
#                                 (137: killed); any other failure fails it
#   crash_run N                   trials 0..N-1 (crash_trial T VARIANT, the
#                                 test's own: VARIANT = T mod the number of
#                                 CRASH_VARIANTS), then crash_landed
#   crash_landed                  after the trials: at least 3/4 of the planned
#                                 kills landed mid-run (or the test proves little)
# A flush is known complete when a later command printed its line: that
# is what lib/wsim.py crashcheck holds the image to (in the current dir).

crash_reset() {
    CRASH_PLANNED=0
    CRASH_KILLED=0
}
crash_reset

crash_begin() { # T LABEL SEED CMDS
    local t=$1 label=$2 seed=$3 line n=0
    command -v stdbuf >/dev/null || { echo "SETUP ERROR: stdbuf (coreutils) not found" >&2; exit 1; }
    CRASH_CMDS=()
    while IFS= read -r line; do
        CRASH_CMDS+=("$line")
        [ "$line" = flush ] || n=$((n + 1))
    done <"$4"
    CRASH_K=0
    RANDOM=$seed
    [ "$t" -eq 0 ] || CRASH_K=$((3 + RANDOM % (n - 6)))
    CRASH_AHEAD=$((1 + RANDOM % 4))
    if [ $CRASH_K -eq 0 ]; then
        case_begin "crash trial $t: $label, seed $seed, not killed"
    else
        CRASH_PLANNED=$((CRASH_PLANNED + 1))
        case_begin "crash trial $t: $label, seed $seed, kill -9 after $CRASH_K of $n commands"
    fi
}

crash_io() { # IMG
    local pid line done_n=0 rfd wfd ofd sent=0 i=0 n=${#CRASH_CMDS[@]}
    CRASH_RC=0
    rm -f out.fifo in.fifo
    mkfifo out.fifo in.fifo
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
        stdbuf -oL "$SCUSE" io "$1" >out.fifo 2>err.txt <in.fifo &
    pid=$!
    exec {rfd}<out.fifo {wfd}>in.fifo {ofd}>out.txt
    # crash_send_ N: commands up to the one whose result is number $1 (flushes
    # ride along); the rest stay unsent, so the run cannot end early
    crash_send_() {
        while [ $i -lt $n ] && { [ "$1" -le 0 ] || [ $sent -lt "$1" ]; }; do
            printf '%s\n' "${CRASH_CMDS[$i]}" >&$wfd
            [ "${CRASH_CMDS[$i]}" = flush ] || sent=$((sent + 1))
            i=$((i + 1))
        done
        # all sent: the end of input ends a run that is not to be killed
        [ "$1" -gt 0 ] || [ $i -lt $n ] || { exec {wfd}>&-; wfd=closed; }
    }
    if [ $CRASH_K -eq 0 ]; then
        crash_send_ 0
    else
        crash_send_ $((CRASH_K + CRASH_AHEAD))
    fi
    local killed=0
    while IFS= read -r -t 120 -u $rfd line; do
        printf '%s\n' "$line" >&$ofd
        case $line in wrote* | discard*)
            done_n=$((done_n + 1))
            if [ $CRASH_K -gt 0 ] && [ $done_n -ge $CRASH_K ]; then
                kill -9 $pid 2>/dev/null || true
                killed=1
                break
            fi
            ;;
        esac
    done
    if [ $CRASH_K -gt 0 ] && [ $killed = 0 ] && kill -0 $pid 2>/dev/null; then
        # no k-th result within 120 s of the last line (a hang, or output
        # this loop does not know): not a kill trial
        kill -9 $pid 2>/dev/null || true
        fail "scuse io stalled after $done_n of $CRASH_K result lines"
        CRASH_KILLED=$((CRASH_KILLED - 1))
    fi
    [ "$wfd" = closed ] || exec {wfd}>&-
    exec {rfd}<&- {ofd}>&-
    { wait $pid; } 2>/dev/null || CRASH_RC=$?
    rm -f out.fifo in.fifo
    if [ $CRASH_RC -eq 137 ]; then
        CRASH_KILLED=$((CRASH_KILLED + 1))
    elif [ $CRASH_RC -ne 0 ]; then
        fail "scuse io exited $CRASH_RC: $(head -n 3 err.txt | tr '\n' '|')"
    fi
}

crash_landed() {
    echo "crash: $CRASH_KILLED of $CRASH_PLANNED kill -9 trials landed mid-run"
    [ $((CRASH_KILLED * 4)) -ge $((CRASH_PLANNED * 3)) ] ||
        { CASE="crash"; fail "only $CRASH_KILLED of $CRASH_PLANNED kills landed mid-run (is stdout line-buffered under stdbuf?)"; }
}

crash_run() { # N
    local t
    crash_reset
    for ((t = 0; t < $1; t++)); do
        crash_trial $t $((t % ${#CRASH_VARIANTS[@]}))
    done
    crash_landed
}
