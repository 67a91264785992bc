#!/bin/sh
# Test-only dependencies: ffcv 1.0.2, the reference reader our .beton files are checked against.
# Its build needs OpenCV and libjpeg-turbo headers (Debian packages) and Pillow (undeclared by ffcv).
set -eu
PY=${PY:-.venv/bin/python}

have_libs() {
    pkg-config --exists opencv4 2>/dev/null && pkg-config --exists libturbojpeg 2>/dev/null
}

if ! have_libs; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pkg-config libopencv-dev libturbojpeg0-dev >/dev/null
    else
        echo "install-test-deps: OpenCV/libjpeg-turbo headers missing and no root apt-get;" \
             "ffcv interop tests will be skipped (sudo apt-get install pkg-config libopencv-dev libturbojpeg0-dev)" >&2
        exit 0
    fi
fi
"$PY" -m pip install -q pillow "ffcv==1.0.2"
"$PY" -c "import ffcv.loader" 2>/dev/null || { echo "install-test-deps: ffcv built but does not import" >&2; exit 1; }
