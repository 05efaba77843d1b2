# Makefile: the whole repository at once. Each chapter directory builds
# alone (`make -C 03-actor`); this file only visits the chapters in order.
# `make help` lists the targets.

# bash with errexit and pipefail, so `bats | summarize` fails when bats does.
SHELL       := bash
.SHELLFLAGS := -eu -o pipefail -c

# The chapters, in teaching order. One "exists" once its Makefile does, so
# the targets below work while later chapters are still being written.
CHAPTERS := 01-runtime 02-shutdown 03-actor 04-select 05-pool 06-blocking 07-semaphore
EXISTING := $(strip $(foreach c,$(CHAPTERS),$(if $(wildcard $(c)/Makefile),$(c))))

# The pattern each chapter teaches, for the headers of `make demo`.
TITLE.01-runtime    := runtime setup
TITLE.02-shutdown   := graceful shutdown
TITLE.03-actor      := actor with mpsc+oneshot
TITLE.04-select     := select! and cancellation safety
TITLE.05-pool       := connection pooling
TITLE.06-blocking   := spawn_blocking
TITLE.07-semaphore  := rate limiting with a semaphore

# The test runner. TAP goes through tests/helpers/summarize, which passes it
# on and ends with "bats: N passed, M failed". Narrow the run with e.g.
#   make test TESTS=tests/01-runtime.bats
BATS       ?= bats
BATS_FLAGS ?= --print-output-on-failure
TESTS      ?= tests/

# `make check`: the suite under sanitizers, one variant at a time (ASan and
# TSan cannot share a binary). Chapter Makefiles keep sanitized objects in an
# object directory of their own, so only SANITIZE=... is passed down.
CHECK_DIR    := .build-check
SAN.asan     := address,undefined
SAN.tsan     := thread
# Reports go to files in a fresh directory per variant (log_path), so a
# report cannot hide in a test's captured stderr: any file there fails check.
SAN_OPTS.asan = ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:detect_leaks=1:exitcode=86:log_path=$(1)/asan \
                UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=86:log_path=$(1)/ubsan
SAN_OPTS.tsan = TSAN_OPTIONS=halt_on_error=1:exitcode=86:second_deadlock_stack=1:log_path=$(1)/tsan

# `make lint`: every chapter's C sources.
LINT_SOURCES := $(wildcard $(addsuffix /*.c,$(CHAPTERS)) $(addsuffix /*.h,$(CHAPTERS)))
LINT_DIRS    := $(sort $(patsubst %/,%,$(dir $(LINT_SOURCES))))
CPPCHECK_FLAGS := --enable=warning,performance,portability --error-exitcode=1 \
                  --inline-suppr --std=c11 -q -D_POSIX_C_SOURCE=200809L

.PHONY: all deps demo test check check-asan check-tsan bench lint clean help $(EXISTING)

# Targets run one after another as written (deps before all before the
# suite); each chapter's own make still gets -j if you pass it.
.NOTPARALLEL:

## all: build every chapter that exists (the default)
all: $(EXISTING)

$(EXISTING):
	$(MAKE) -C $@

## deps: install the Debian packages that are missing (silent when ready)
deps:
	@bash .ci/deps

## demo: the guided tour, every chapter's demo in order
demo: deps all
	$(foreach c,$(CHAPTERS),$(call demo_chapter,$(c)))

# demo_chapter CH: one stop of the tour (a recipe line per chapter).
define demo_chapter
	@if [ -f $(1)/Makefile ]; then \
	    echo "==== $(1): tokio $(TITLE.$(1)) ===="; \
	    $(MAKE) -s -C $(1) demo; \
	else \
	    echo "---- $(1): not written yet, skipped"; \
	fi

endef

## test: build, then run the bats suite (narrow it with TESTS=...)
test: deps all
	$(BATS) $(BATS_FLAGS) --formatter tap $(TESTS) | tests/helpers/summarize

## check: the suite under ASan+UBSan, then under TSan; then rebuild normally
# Both variants run even if the first fails; the normal binaries are rebuilt
# in any case, so a failed check does not leave sanitized binaries behind.
check: deps
	@status=0; \
	$(MAKE) --no-print-directory check-asan || status=1; \
	$(MAKE) --no-print-directory check-tsan || status=1; \
	echo "==== check: rebuilding the normal binaries ===="; \
	$(MAKE) --no-print-directory all; \
	if [ $$status -ne 0 ]; then echo "check: FAILED (see above)"; fi; \
	exit $$status

# check-asan, check-tsan: build with that sanitizer, run the suite with the
# sanitizer logging into an empty directory, then fail if the suite failed
# or if any report was written (`make check` runs both). The variant is the
# stem ($*), not a VARIANT=... argument: a command-line variable would be
# passed down to, and override, the chapter Makefiles' own variables.
check-asan check-tsan: check-%:
	@dir="$(CURDIR)/$(CHECK_DIR)/sanlogs-$*"; \
	rm -rf "$$dir" && mkdir -p "$$dir"; \
	echo "==== check: SANITIZE=$(SAN.$*) ===="; \
	status=0; \
	$(call SAN_OPTS.$*,$$dir) \
	    $(MAKE) --no-print-directory test SANITIZE=$(SAN.$*) || status=1; \
	if [ -n "$$(ls -A "$$dir")" ]; then \
	    echo "check: sanitizer reports (SANITIZE=$(SAN.$*)):"; \
	    for f in "$$dir"/*; do echo "---- $$f"; cat "$$f"; done; \
	    status=1; \
	fi; \
	exit $$status

## bench: run every chapter's benchmark, then print all RESULT lines as a table
# Only chapters whose Makefile has a bench target take part. A chapter that
# needs wrk/nginx/hyperfine says so by defining BENCH_DEPS in its Makefile.
bench: deps all
	@if [ -n "$(EXISTING)" ] && grep -qs '^[[:space:]]*BENCH_DEPS' $(addsuffix /Makefile,$(EXISTING)); then \
	    bash .ci/deps bench; \
	fi
	@rm -rf $(CHECK_DIR)/bench && mkdir -p $(CHECK_DIR)/bench; \
	status=0; \
	for c in $(EXISTING); do \
	    grep -Eq '^bench[[:space:]]*:([^=]|$$)' $$c/Makefile || continue; \
	    echo "==== bench: $$c ===="; \
	    $(MAKE) -s -C $$c bench | tee $(CHECK_DIR)/bench/$$c.out || status=1; \
	done; \
	echo; \
	tests/helpers/bench-table $(CHECK_DIR)/bench; \
	exit $$status

## lint: clang-format --dry-run and cppcheck over every chapter's sources
lint:
	@bash .ci/deps lint
	$(if $(LINT_SOURCES),clang-format --dry-run --Werror $(LINT_SOURCES))
	$(foreach d,$(LINT_DIRS),cppcheck $(CPPCHECK_FLAGS) -I $(d) $(d) &&) true

## clean: remove every chapter's build products and the check/bench logs
clean:
	$(foreach c,$(EXISTING),$(MAKE) -C $(c) clean &&) true
	rm -rf $(CHECK_DIR)

## help: list these targets
help:
	@echo "make [target] (chapters present: $(or $(EXISTING),none))"
	@sed -n "s/^## /  /p" $(MAKEFILE_LIST)
	@echo "variables: TESTS=tests/NN-name.bats  BATS=bats  BATS_FLAGS=...  SANITIZE=... (chapters)"
