"""``python -m tests.zygote_probe ARG``: what tests/test_zygote.py checks a forked run does on its way
out as an interpreter would: its arguments, a non-daemon thread joined, atexit handlers run, both
streams flushed, and the exit status of ``SystemExit``."""
import atexit
import sys
import threading
import time

print("argv", *sys.argv[1:])
atexit.register(lambda: print("atexit ran", flush=True))


def _late():
    time.sleep(0.2)
    print("thread joined")


threading.Thread(target=_late).start()
sys.stderr.write("to stderr\n")
sys.exit(3)
