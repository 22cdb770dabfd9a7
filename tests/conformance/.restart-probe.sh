#!/bin/sh
touch /tmp/pytest-of-root/pytest-174/popen-gw0/test_g16_runs_alone_from_the_c0/restarted
