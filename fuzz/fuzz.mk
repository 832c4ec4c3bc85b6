# libFuzzer harnesses for the event parser and the config loader (fuzz/README.md).
# Included at the end of Makefile.am. None of this runs in `make` or `make check`:
#   make fuzz            build both harnesses with clang and run each for FUZZ_SECONDS
#   make fuzz-regress    replay fuzz/regressions/, fuzz/corpus/ and the project's own
#                        fixtures and configs through both harnesses (a few seconds)
#   make fuzz-clean      remove the harnesses and fuzz/work/, fuzz/artifacts/
# They are built from the sources in src/ with clang, not from libfluxrelay.a:
# libFuzzer needs every object compiled with -fsanitize=fuzzer coverage.

FUZZ_CC = clang
FUZZ_SECONDS = 60
FUZZ_ARGS =
FUZZ_SANFLAGS = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -g -O1 -fno-omit-frame-pointer -std=c11 -D_GNU_SOURCE $(WARN_CFLAGS) \
	$(FUZZ_SANFLAGS) -I$(top_builddir) -I$(top_srcdir)/src \
	$(JANSSON_CFLAGS) $(LIBCONFIG_CFLAGS) $(PCRE2_CFLAGS) $(GNUTLS_CFLAGS) $(SQLITE_CFLAGS)
FUZZ_LIBS = $(JANSSON_LIBS) $(LIBCONFIG_LIBS) $(PCRE2_LIBS) $(GNUTLS_LIBS) $(SQLITE_LIBS) -lm
# libFuzzer options common to both runs: a hang is a finding after 10 s, and so
# is a single input that makes the harness use more than 2 GiB.
FUZZ_RUNFLAGS = -timeout=10 -rss_limit_mb=2048 -print_final_stats=1

# A clear message instead of "clang: not found" or a link error about libFuzzer.
FUZZ_CHECK_CC = command -v $(FUZZ_CC) >/dev/null 2>&1 || { \
	echo "fuzz: $(FUZZ_CC) not found: apt-get install clang libclang-rt-dev" >&2; exit 1; }

# fuzz_conf.c's LeakSanitizer suppressions name functions, and without a
# symbolizer LeakSanitizer sees only addresses: libconfig's known leak would
# be reported as ours. Debian's clang does not bring llvm-symbolizer (package
# llvm, or llvm-14 for clang's own copy): the harnesses are run with the one
# clang names, and not at all without one.
FUZZ_SYMBOLIZER = $$(p=$$($(FUZZ_CC) -print-prog-name=llvm-symbolizer); \
	case "$$p" in (/*) echo "$$p" ;; (*) command -v "$$p" ;; esac)
FUZZ_CHECK_SYMBOLIZER = test -x "$(FUZZ_SYMBOLIZER)" || { \
	echo "fuzz: llvm-symbolizer not found (LeakSanitizer's suppressions need it):" \
	    "apt-get install llvm" >&2; exit 1; }
FUZZ_ENV = ASAN_SYMBOLIZER_PATH="$(FUZZ_SYMBOLIZER)" FUZZ_TMPDIR=`pwd`/fuzz/work/tmp

FUZZ_HDRS = $(top_srcdir)/src/util.h $(top_srcdir)/src/log.h $(top_srcdir)/src/conf.h \
	$(top_srcdir)/src/event.h $(top_srcdir)/src/event_internal.h \
	$(top_srcdir)/src/rules.h $(top_srcdir)/src/dedup.h \
	$(top_srcdir)/src/slack.h $(top_srcdir)/src/auth.h $(top_srcdir)/src/queue.h \
	$(top_srcdir)/src/template.h $(top_srcdir)/src/slack_blocks.h \
	$(top_srcdir)/src/slack_look.h $(top_srcdir)/src/slack_internal.h $(top_srcdir)/src/slack_json.h
# conf.c compiles the alerts' templates: template.c goes with it.
FUZZ_BASE_SRCS = $(top_srcdir)/src/util.c $(top_srcdir)/src/log.c $(top_srcdir)/src/conf.c \
	$(top_srcdir)/src/event.c $(top_srcdir)/src/event_fast.c $(top_srcdir)/src/rules.c \
	$(top_srcdir)/src/template.c
# dedup.c's window decision reads the queue (SQLite): linked, never called.
FUZZ_EVENT_SRCS = $(top_srcdir)/fuzz/fuzz_event.c $(FUZZ_BASE_SRCS) \
	$(top_srcdir)/src/dedup.c $(top_srcdir)/src/slack.c $(top_srcdir)/src/auth.c \
	$(top_srcdir)/src/queue.c $(top_srcdir)/src/slack_blocks.c $(top_srcdir)/src/slack_look.c \
	$(top_srcdir)/src/slack_json.c
FUZZ_CONF_SRCS = $(top_srcdir)/fuzz/fuzz_conf.c $(FUZZ_BASE_SRCS)

fuzz/fuzz_event: $(FUZZ_EVENT_SRCS) $(FUZZ_HDRS)
	@$(FUZZ_CHECK_CC)
	@$(MKDIR_P) fuzz
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(FUZZ_EVENT_SRCS) $(FUZZ_LIBS)

# util_read_file is wrapped in the harness: only regular files of at most 1 MiB.
fuzz/fuzz_conf: $(FUZZ_CONF_SRCS) $(FUZZ_HDRS)
	@$(FUZZ_CHECK_CC)
	@$(MKDIR_P) fuzz
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_CFLAGS) -Wl,--wrap=util_read_file -o $@ \
	    $(FUZZ_CONF_SRCS) $(FUZZ_LIBS)

# Seeds: the fixtures and configs are copied into one directory each, because
# libFuzzer takes directories, not single files, as corpora. New inputs found
# go to fuzz/work/{event,conf} (kept between runs); crashes to fuzz/artifacts/.
fuzz-seeds:
	@$(MKDIR_P) fuzz/work/event fuzz/work/conf fuzz/work/seeds-event fuzz/work/seeds-conf \
	    fuzz/work/tmp fuzz/artifacts
	@cp -f $(top_srcdir)/tests/fixtures/events/*.json fuzz/work/seeds-event/
	@cp -f $(top_srcdir)/etc/fluxrelay.conf fuzz/work/seeds-conf/etc-fluxrelay.conf
	@for f in $(top_srcdir)/tests/configs/*.conf; do \
	    test -f "$$f" && cp -f "$$f" fuzz/work/seeds-conf/; done; :

fuzz: fuzz/fuzz_event fuzz/fuzz_conf fuzz-seeds
	@$(FUZZ_CHECK_SYMBOLIZER)
	$(FUZZ_ENV) ./fuzz/fuzz_event $(FUZZ_RUNFLAGS) \
	    -max_total_time=$(FUZZ_SECONDS) -dict=$(top_srcdir)/fuzz/corpus/event.dict \
	    -artifact_prefix=fuzz/artifacts/event- $(FUZZ_ARGS) \
	    fuzz/work/event $(top_srcdir)/fuzz/corpus/event fuzz/work/seeds-event
	$(FUZZ_ENV) ./fuzz/fuzz_conf $(FUZZ_RUNFLAGS) \
	    -max_total_time=$(FUZZ_SECONDS) -dict=$(top_srcdir)/fuzz/corpus/conf.dict \
	    -artifact_prefix=fuzz/artifacts/conf- $(FUZZ_ARGS) \
	    fuzz/work/conf $(top_srcdir)/fuzz/corpus/conf fuzz/work/seeds-conf

# Every kept input, once each (libFuzzer runs single files when given files).
fuzz-regress: fuzz/fuzz_event fuzz/fuzz_conf fuzz-seeds
	@$(FUZZ_CHECK_SYMBOLIZER)
	@set -e; for t in event conf; do \
	    files=`find $(top_srcdir)/fuzz/regressions/$$t $(top_srcdir)/fuzz/corpus/$$t \
	        fuzz/work/seeds-$$t -type f 2>/dev/null | sort`; \
	    n=`echo "$$files" | grep -c . || :`; \
	    echo "fuzz-regress: $$n inputs through fuzz/fuzz_$$t"; \
	    test -z "$$files" || $(FUZZ_ENV) \
	        ./fuzz/fuzz_$$t $$files > fuzz/work/regress-$$t.log 2>&1 || { \
	        tail -40 fuzz/work/regress-$$t.log; echo "fuzz-regress: fuzz_$$t FAILED"; exit 1; }; \
	done; echo "fuzz-regress: all inputs passed"

fuzz-clean:
	rm -rf fuzz/fuzz_event fuzz/fuzz_conf fuzz/work fuzz/artifacts

clean-local: fuzz-clean

.PHONY: fuzz fuzz-seeds fuzz-regress fuzz-clean

EXTRA_DIST += fuzz/README.md fuzz/fuzz_event.c fuzz/fuzz_conf.c fuzz/corpus fuzz/regressions

# Differential harness for the event parser's fast path (fuzz/fuzz_event_diff.c):
# on every input, event_parse_fast() must give up or build exactly the event
# event_parse_reference() (jansson) builds, and event_parse() must answer as the
# reference does, error text included.
#   make fuzz-diff         run it for FUZZ_SECONDS, seeded from the fixtures and
#                          fuzz/corpus/event (new inputs go to fuzz/work/event-diff)
#   make fuzz-regress      also replays the event inputs through it (fuzz-regress-diff)
FUZZ_DIFF_SRCS = $(top_srcdir)/fuzz/fuzz_event_diff.c $(top_srcdir)/src/event.c \
	$(top_srcdir)/src/event_fast.c $(top_srcdir)/src/util.c

fuzz/fuzz_event_diff: $(FUZZ_DIFF_SRCS) $(top_srcdir)/src/event.h \
	    $(top_srcdir)/src/event_internal.h $(top_srcdir)/src/util.h
	@$(FUZZ_CHECK_CC)
	@$(MKDIR_P) fuzz
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(FUZZ_DIFF_SRCS) $(FUZZ_LIBS)

fuzz-diff: fuzz/fuzz_event_diff fuzz-seeds
	@$(MKDIR_P) fuzz/work/event-diff
	@$(FUZZ_CHECK_SYMBOLIZER)
	$(FUZZ_ENV) ./fuzz/fuzz_event_diff $(FUZZ_RUNFLAGS) -max_total_time=$(FUZZ_SECONDS) \
	    -dict=$(top_srcdir)/fuzz/corpus/event.dict \
	    -artifact_prefix=fuzz/artifacts/event-diff- $(FUZZ_ARGS) \
	    fuzz/work/event-diff $(top_srcdir)/fuzz/corpus/event fuzz/work/seeds-event

fuzz-regress-diff: fuzz/fuzz_event_diff fuzz-seeds
	@files=`find $(top_srcdir)/fuzz/regressions/event $(top_srcdir)/fuzz/corpus/event \
	    fuzz/work/seeds-event -type f 2>/dev/null | sort`; \
	n=`echo "$$files" | grep -c . || :`; \
	echo "fuzz-regress: $$n inputs through fuzz/fuzz_event_diff"; \
	test -z "$$files" || $(FUZZ_ENV) ./fuzz/fuzz_event_diff $$files > fuzz/work/regress-event-diff.log 2>&1 || { \
	    tail -40 fuzz/work/regress-event-diff.log; \
	    echo "fuzz-regress: fuzz_event_diff FAILED"; exit 1; }

fuzz-regress: fuzz-regress-diff

fuzz-clean-diff:
	rm -f fuzz/fuzz_event_diff

fuzz-clean: fuzz-clean-diff

.PHONY: fuzz-diff fuzz-regress-diff fuzz-clean-diff

EXTRA_DIST += fuzz/fuzz_event_diff.c

# fluxrelay import's conversion (fuzz/fuzz_import.c): Flux manifests (YAML) ->
# config text, with and without a secrets directory; an accepted input must
# give valid libconfig. Seeds: tests/fixtures/flux/*.yaml and fuzz/corpus/import/.
#   make fuzz-import       run it for FUZZ_SECONDS (also part of `make fuzz`)
#   make fuzz-regress      also replays the import inputs through it
FUZZ_IMPORT_SRCS = $(top_srcdir)/fuzz/fuzz_import.c $(top_srcdir)/src/import_map.c \
	$(top_srcdir)/src/import_yaml.c $(top_srcdir)/src/util.c

fuzz/fuzz_import: $(FUZZ_IMPORT_SRCS) $(top_srcdir)/src/import_map.h \
	    $(top_srcdir)/src/import_yaml.h $(top_srcdir)/src/util.h
	@$(FUZZ_CHECK_CC)
	@$(MKDIR_P) fuzz
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_CFLAGS) $(YAML_CFLAGS) -o $@ $(FUZZ_IMPORT_SRCS) \
	    $(FUZZ_LIBS) $(YAML_LIBS)

fuzz-seeds-import:
	@$(MKDIR_P) fuzz/work/import fuzz/work/seeds-import fuzz/artifacts
	@cp -f $(top_srcdir)/tests/fixtures/flux/*.yaml fuzz/work/seeds-import/

fuzz-import: fuzz/fuzz_import fuzz-seeds-import
	./fuzz/fuzz_import $(FUZZ_RUNFLAGS) -max_total_time=$(FUZZ_SECONDS) \
	    -dict=$(top_srcdir)/fuzz/corpus/import.dict \
	    -artifact_prefix=fuzz/artifacts/import- $(FUZZ_ARGS) \
	    fuzz/work/import $(top_srcdir)/fuzz/corpus/import fuzz/work/seeds-import

fuzz: fuzz-import

fuzz-regress-import: fuzz/fuzz_import fuzz-seeds-import
	@files=`find $(top_srcdir)/fuzz/regressions/import $(top_srcdir)/fuzz/corpus/import \
	    fuzz/work/seeds-import -type f 2>/dev/null | sort`; \
	n=`echo "$$files" | grep -c . || :`; \
	echo "fuzz-regress: $$n inputs through fuzz/fuzz_import"; \
	test -z "$$files" || ./fuzz/fuzz_import $$files > fuzz/work/regress-import.log 2>&1 || { \
	    tail -40 fuzz/work/regress-import.log; \
	    echo "fuzz-regress: fuzz_import FAILED"; exit 1; }

fuzz-regress: fuzz-regress-import

fuzz-clean-import:
	rm -f fuzz/fuzz_import

fuzz-clean: fuzz-clean-import

.PHONY: fuzz-import fuzz-seeds-import fuzz-regress-import fuzz-clean-import

EXTRA_DIST += fuzz/fuzz_import.c

# Template language harness (fuzz/fuzz_template.c): compile arbitrary template
# text, render what compiles against fixed events, check the output bounds.
#   make fuzz              also runs it for FUZZ_SECONDS (fuzz-template)
#   make fuzz-regress      also replays fuzz/regressions/template and
#                          fuzz/corpus/template through it (fuzz-regress-template)
FUZZ_TEMPLATE_SRCS = $(top_srcdir)/fuzz/fuzz_template.c $(FUZZ_BASE_SRCS)

fuzz/fuzz_template: $(FUZZ_TEMPLATE_SRCS) $(FUZZ_HDRS)
	@$(FUZZ_CHECK_CC)
	@$(MKDIR_P) fuzz
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(FUZZ_TEMPLATE_SRCS) $(FUZZ_LIBS)

fuzz-template: fuzz/fuzz_template
	@$(MKDIR_P) fuzz/work/template fuzz/artifacts
	./fuzz/fuzz_template $(FUZZ_RUNFLAGS) -max_total_time=$(FUZZ_SECONDS) \
	    -dict=$(top_srcdir)/fuzz/corpus/template.dict \
	    -artifact_prefix=fuzz/artifacts/template- $(FUZZ_ARGS) \
	    fuzz/work/template $(top_srcdir)/fuzz/corpus/template

fuzz-regress-template: fuzz/fuzz_template
	@$(MKDIR_P) fuzz/work
	@files=`find $(top_srcdir)/fuzz/regressions/template $(top_srcdir)/fuzz/corpus/template \
	    -type f 2>/dev/null | sort`; \
	n=`echo "$$files" | grep -c . || :`; \
	echo "fuzz-regress: $$n inputs through fuzz/fuzz_template"; \
	test -z "$$files" || ./fuzz/fuzz_template $$files > fuzz/work/regress-template.log 2>&1 || { \
	    tail -40 fuzz/work/regress-template.log; \
	    echo "fuzz-regress: fuzz_template FAILED"; exit 1; }

fuzz: fuzz-template
fuzz-regress: fuzz-regress-template

fuzz-clean-template:
	rm -f fuzz/fuzz_template

fuzz-clean: fuzz-clean-template

.PHONY: fuzz-template fuzz-regress-template fuzz-clean-template

EXTRA_DIST += fuzz/fuzz_template.c
