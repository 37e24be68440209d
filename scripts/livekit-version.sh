# The LiveKit versions bedrud is built and tested against (sourced by the scripts, read by the tests).
# LIVEKIT_VERSION is the one the packages carry; LIVEKIT_OLD_VERSION is an older release the
# tests also start, to keep the version-dependent config keys honest.
LIVEKIT_VERSION=1.13.5
LIVEKIT_OLD_VERSION=1.11.0
# The LiveKit Egress worker (recording) scripts/install-egress.sh builds from the vendored source.
EGRESS_VERSION=1.14.0
# versitygw, the S3-compatible server (Apache-2.0, posix backend) the S3 recording test uploads to
# (scripts/install-versitygw.sh builds it from its Go module).
VERSITYGW_VERSION=1.8.0
