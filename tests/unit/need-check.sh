#!/bin/sh
# Stands in for the unit tests when configure did not find the Check library:
# `make check` must not pass without them, and must say why.
echo "the unit tests need the Check library, which configure did not find:" >&2
echo "install it (apt-get install -y check), then run configure again" >&2
exit 99
