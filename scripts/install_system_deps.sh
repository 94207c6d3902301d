#!/usr/bin/env bash
# Install the Debian tools that tests use as reference implementations (and the Orthanc
# PACS for the export round trip), if missing.
# Needs root (as on CI); otherwise prints what to install and continues.
set -euo pipefail
need=()
command -v dcm2niix >/dev/null 2>&1 || need+=(dcm2niix)
command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
# Orthanc PACS (+ DICOMweb plugin) for the export PACS round-trip test.
command -v Orthanc >/dev/null 2>&1 || need+=(orthanc)
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
# headless browser that renders medseg evaluate's report.html in the tests
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: please install: ${need[*]} (apt-get install ${need[*]})" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
