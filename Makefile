# Each target bootstraps .venv on its own, so `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.edgex-installed

.PHONY: demo test bench venv sysdeps clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the microcontroller target (arm gcc), the HIL tests (sshd, pgrep), the TFLite metadata
# round trip (libusb-1.0-0: tflite-support's native module links it) and the android app-code tests (kotlin:
# kotlinc 1.3.31, which pulls a JDK) use, installed when missing (needs root).
DEB_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib openssh-server procps \
                libusb-1.0-0 kotlin
sysdeps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	  [ "$$(dpkg-query -W -f='$${Status}' $$p 2>/dev/null)" = "install ok installed" ] || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi

demo: $(STAMP) sysdeps
	$(VENV)/bin/edgex export --demo --target android --out build/demo-android

# The tests and the docstring examples in one session (the demo is trained once, see conftest.py).
# --doctest-modules also reaches tests/, which holds no `>>>` examples: nothing is collected twice.
test: $(STAMP) sysdeps
	$(PY) -m pytest -q --durations=30 tests --doctest-modules exporter targets

bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/compression.py
	$(PY) benchmarks/multi_target.py

clean:
	rm -rf build .pytest_cache
