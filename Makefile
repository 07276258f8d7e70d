# onexd — the two commands a newcomer needs are `make demo` and `make test`. Both are idempotent.
# They install what is missing (a venv; Debian's docker.io, mmdebstrap and busybox-static), start dockerd
# when no engine answers, and build the runner images offline.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
HOST_PACKAGES := docker.io mmdebstrap busybox-static systemd curl rsyslog rsyslog-openssl webhook
DOCKERD_LOG ?= /var/log/onexd-dockerd.log

PREFIX ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc

.PHONY: install master-key test-images demo test lint unit host-deps engine images receivers bench bench-policy bench-runtime bench-daemon bench-audit bench-pool generate clean

# A venv with the pinned dependencies, reinstalled when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

host-deps:
	@missing=""; for p in $(HOST_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" \
	  || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  [ "$$(id -u)" = 0 ] || { echo "missing Debian packages:$$missing (run as root, or install them)"; exit 1; }; \
	  echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The engine onexd runs jobs on: the one answering on the default socket, or a dockerd we start.
engine: host-deps $(STAMP)
	@if ! $(BIN)/python -c 'import docker; docker.from_env(timeout=5).ping()' >/dev/null 2>&1; then \
	  echo "starting dockerd (log: $(DOCKERD_LOG))"; \
	  nohup /usr/sbin/dockerd >$(DOCKERD_LOG) 2>&1 & \
	  for i in $$(seq 1 60); do $(BIN)/python -c 'import docker; docker.from_env(timeout=5).ping()' >/dev/null 2>&1 && break; sleep 1; done; \
	  $(BIN)/python -c 'import docker; docker.from_env(timeout=5).ping()' >/dev/null 2>&1 \
	    || { echo "dockerd did not come up; see $(DOCKERD_LOG)"; tail -20 $(DOCKERD_LOG); exit 1; }; \
	fi

images: engine
	$(BIN)/onexd image build

# Real receivers for the audit shipping tests: rsyslog and webhook are host packages (above); syslog-ng conflicts with
# it (both provide system-log-daemon), so its Debian packages are unpacked into the venv and run from there.
SYSLOG_NG_ROOT := $(VENV)/receivers/syslog-ng
SYSLOG_NG_DEBS := syslog-ng-core libivykis0 libpcre3 libwrap0
receivers: host-deps $(SYSLOG_NG_ROOT)/usr/sbin/syslog-ng

$(SYSLOG_NG_ROOT)/usr/sbin/syslog-ng:
	@rm -rf "$(SYSLOG_NG_ROOT).tmp" && mkdir -p "$(SYSLOG_NG_ROOT).tmp/debs"
	cd "$(SYSLOG_NG_ROOT).tmp/debs" && { apt-get download -q $(SYSLOG_NG_DEBS) 2>/dev/null \
	  || { apt-get update -qq && apt-get download -q $(SYSLOG_NG_DEBS); }; }
	for f in "$(SYSLOG_NG_ROOT).tmp/debs/"*.deb; do dpkg-deb -x "$$f" "$(SYSLOG_NG_ROOT).tmp/root"; done
	rm -rf "$(SYSLOG_NG_ROOT)" && mv "$(SYSLOG_NG_ROOT).tmp/root" "$(SYSLOG_NG_ROOT)" && rm -rf "$(SYSLOG_NG_ROOT).tmp"

demo: images
	@PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

# The systemd test's image (systemd as PID 1 with Debian's python3): built once, then skipped while up to date.
test-images: images
	$(BIN)/onexd image build --only onexd/test-systemd

test: lint images test-images receivers
	$(BIN)/pytest --integration

lint: $(STAMP)
	$(BIN)/ruff check onexd tests bench
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not docker"

bench: bench-policy bench-runtime bench-daemon bench-audit bench-pool

bench-policy: $(STAMP)
	$(BIN)/python bench/bench_policy.py

bench-runtime: images
	$(BIN)/python bench/bench_runtime.py

bench-daemon: images
	$(BIN)/python bench/bench_daemon.py

bench-pool: images
	$(BIN)/python bench/bench_pool.py

bench-audit: $(STAMP)
	$(BIN)/python bench/bench_audit.py
	$(BIN)/python bench/audit_crash.py 100

# Regenerate what is derived from the code (tests fail when these drift).
generate: $(STAMP)
	$(BIN)/onexd policy schemas --out schemas
	$(BIN)/onexd policy rules > docs/rules.md
	$(BIN)/onexd docs policy > docs/policy-reference.md
	$(BIN)/onexd docs api > docs/api.md
	$(BIN)/onexd docs audit-events > docs/audit-events.md
	$(BIN)/onexd docs cli > docs/cli.md
	$(BIN)/python tools/gen_syscalls.py > onexd/runtime/syscall_table.py

# Where a distribution would put things: the program (with its dependencies) under PREFIX, units, sysusers and
# tmpfiles snippets, a commented onexd.yaml and the baseline policies (never overwriting an operator's).
# The program lives in a private venv, PREFIX/lib/onexd (its dependencies never touch the system Python);
# with DESTDIR the scripts' shebangs are rewritten to where the files will finally be.
install:
	rm -rf "$(DESTDIR)$(PREFIX)/lib/onexd"
	$(PYTHON) -m venv "$(DESTDIR)$(PREFIX)/lib/onexd"
	"$(DESTDIR)$(PREFIX)/lib/onexd/bin/python" -m pip install --quiet .
	@if [ -n "$(DESTDIR)" ]; then for f in "$(DESTDIR)$(PREFIX)/lib/onexd/bin/"*; do \
	  [ -L "$$f" ] || ! head -c2 "$$f" | grep -q '#!' || sed -i "1s|$(DESTDIR)||" "$$f"; done; fi
	install -d "$(DESTDIR)$(PREFIX)/bin"
	ln -sf ../lib/onexd/bin/onexd "$(DESTDIR)$(PREFIX)/bin/onexd"
	ln -sf ../lib/onexd/bin/onexctl "$(DESTDIR)$(PREFIX)/bin/onexctl"
	install -d "$(DESTDIR)$(PREFIX)/lib/systemd/system" "$(DESTDIR)$(PREFIX)/lib/sysusers.d" \
	  "$(DESTDIR)$(PREFIX)/lib/tmpfiles.d" "$(DESTDIR)$(PREFIX)/share/doc/onexd" "$(DESTDIR)$(SYSCONFDIR)/onexd/policies.d"
	sed 's|/usr/bin/onexd|$(PREFIX)/bin/onexd|' systemd/onexd.service > "$(DESTDIR)$(PREFIX)/lib/systemd/system/onexd.service"
	install -m 0644 systemd/onexd.socket "$(DESTDIR)$(PREFIX)/lib/systemd/system/onexd.socket"
	install -m 0644 systemd/onexd.sysusers "$(DESTDIR)$(PREFIX)/lib/sysusers.d/onexd.conf"
	install -m 0644 systemd/onexd.tmpfiles "$(DESTDIR)$(PREFIX)/lib/tmpfiles.d/onexd.conf"
	test -e "$(DESTDIR)$(SYSCONFDIR)/onexd/onexd.yaml" || install -m 0640 examples/onexd.yaml "$(DESTDIR)$(SYSCONFDIR)/onexd/onexd.yaml"
	test -e "$(DESTDIR)$(SYSCONFDIR)/onexd/policies.d/baseline" || cp -r policies/baseline "$(DESTDIR)$(SYSCONFDIR)/onexd/policies.d/"
	install -m 0644 README.md docs/*.md "$(DESTDIR)$(PREFIX)/share/doc/onexd/"
	@if [ -n "$(DESTDIR)" ]; then echo "DESTDIR set: no master key made; on the target host run: make master-key"; \
	  else $(MAKE) --no-print-directory master-key; fi
	@echo "installed under $(DESTDIR)$(PREFIX); then: systemd-sysusers, systemd-tmpfiles --create, systemctl enable --now onexd.socket"

# The master key credential the unit loads, made once (an existing key is never replaced): encrypted with
# systemd-creds (host key or TPM2) when it is there; else a 0600 plain file plus a drop-in that loads it with
# LoadCredential=, said loudly. SYSTEMD_CREDS= (empty) takes the second way; DROPIN_DIR is for tests.
SYSTEMD_CREDS ?= $(shell command -v systemd-creds)
DROPIN_DIR ?= /etc/systemd/system/onexd.service.d
master-key:
	@set -e; umask 077; key="$(SYSCONFDIR)/onexd/master-key"; install -d -m 0750 "$(SYSCONFDIR)/onexd"; \
	if [ -e "$$key.cred" ] || [ -e "$$key" ]; then echo "master key: keeping the existing $$key*"; \
	elif [ -n "$(SYSTEMD_CREDS)" ]; then \
	  head -c 32 /dev/urandom | base64 -w0 | "$(SYSTEMD_CREDS)" encrypt --name=master-key - "$$key.cred"; \
	  echo "master key: created $$key.cred, encrypted by systemd-creds (LoadCredentialEncrypted=)"; \
	else \
	  head -c 32 /dev/urandom | base64 -w0 > "$$key"; install -d -m 0755 "$(DROPIN_DIR)"; \
	  printf '[Service]\nLoadCredentialEncrypted=\nLoadCredential=master-key:%s\n' "$$key" \
	    > "$(DROPIN_DIR)/master-key.conf"; chmod 0644 "$(DROPIN_DIR)/master-key.conf"; \
	  echo "WARNING: systemd-creds not found: the master key is a PLAIN file, $$key (0600 root), loaded by"; \
	  echo "WARNING: $(DROPIN_DIR)/master-key.conf. Keep it out of backups of /var/lib/onexd."; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/results
