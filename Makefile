# vmlet build. `make test` installs missing Debian packages (make deps),
# builds everything and runs every test; the last line it prints is
# "N passed, N failed, N skipped".
#
# Each concern is its own static library so a test links only the layers
# it needs:  proto <- shared <- rpc <- certs <- hostd / agentd / ctl.

O        ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
SAN      ?=
FUZZ_TIME ?= 60
FUZZ_SMOKE_TIME ?= 5

PKGS := libprotobuf-c wolfssl libnl-3.0 libnl-route-3.0 libnftables libcryptsetup \
        libseccomp libcap libcap-ng jansson inih liburing
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla -Wno-unused-parameter
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -fno-strict-aliasing $(WARN) $(CFLAGS) \
              -I. -I$(O)/gen -I$(O)/gen/rpc $(PKG_CFLAGS) -MMD -MP
LDLIBS  := $(PKG_LIBS) -lnng -lpthread -latomic
ifneq ($(SAN),)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS    += -fsanitize=address,undefined
endif

# ---- sources ---------------------------------------------------------------
PROTOS    := rpc/agent.proto rpc/host.proto
GEN_C     := $(patsubst rpc/%.proto,$(O)/gen/rpc/%.pb-c.c,$(PROTOS))
GEN_H     := $(GEN_C:.c=.h)

MODULES   := shared rpc certs hostd agentd ctl
src_of     = $(filter-out $(1)/main.c,$(wildcard $(1)/*.c))
obj_of     = $(patsubst %.c,$(O)/obj/%.o,$(call src_of,$(1)))

LIB_proto  := $(O)/lib/libproto.a
$(foreach m,$(MODULES),$(eval LIB_$(m) := $(O)/lib/lib$(m).a))

# What each layer links (its own library first, then what it uses).
LAYER_shared := $(LIB_shared) $(LIB_proto)
LAYER_rpc    := $(LIB_rpc) $(LAYER_shared)
LAYER_certs  := $(LIB_certs) $(LAYER_shared)
LAYER_hostd  := $(LIB_hostd) $(LIB_rpc) $(LAYER_shared)
LAYER_agentd := $(LIB_agentd) $(LIB_certs) $(LIB_rpc) $(LAYER_shared)
LAYER_ctl    := $(LIB_ctl) $(LIB_certs) $(LIB_rpc) $(LAYER_shared)
LAYER_all    := $(LIB_hostd) $(LIB_agentd) $(LIB_ctl) $(LIB_certs) $(LIB_rpc) $(LAYER_shared)

BINS := $(O)/vmlet-hostd $(O)/vmlet-agentd $(O)/vmletctl

# Unit tests: tests/unit/test_<module>_<subject>.c links LAYER_<module>.
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(O)/tests/%,$(UNIT_SRC))
# test_rpc_frame -> rpc ; fuzz_rpc_json -> rpc ; bench_all_tls -> all
module_of  = $(word 2,$(subst _, ,$(notdir $(1))))

# Benchmarks: bench/bench_<module>_<subject>.c links LAYER_<module> (or all).
BENCH_SRC  := $(wildcard bench/bench_*.c)
BENCH_BINS := $(patsubst bench/%.c,$(O)/bench/%,$(BENCH_SRC))

.SECONDEXPANSION:
.PHONY: all deps test unit integration check bench fuzz fuzz-smoke run install clean guest
.SECONDARY:

all: $(BINS)

# ---- generated protobuf-c code ----------------------------------------------
$(O)/gen/rpc/%.pb-c.c $(O)/gen/rpc/%.pb-c.h: rpc/%.proto
	@mkdir -p $(O)/gen/rpc
	protoc-c --proto_path=rpc --c_out=$(O)/gen/rpc $<
# host.proto imports agent.proto
$(O)/gen/rpc/host.pb-c.c: $(O)/gen/rpc/agent.pb-c.h

$(O)/obj/gen/%.o: $(O)/gen/%.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-error -c $< -o $@

$(O)/obj/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB_proto): $(patsubst $(O)/gen/%.c,$(O)/obj/gen/%.o,$(GEN_C))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

define module_lib
$(LIB_$(1)): $(call obj_of,$(1))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_lib,$(m))))

link = $(CC) $(LDFLAGS) -o $@ $(1) -Wl,--start-group $(2) -Wl,--end-group $(LDLIBS)

$(O)/vmlet-hostd: $(O)/obj/hostd/main.o $(LAYER_hostd)
	$(call link,$<,$(LAYER_hostd))
$(O)/vmlet-agentd: $(O)/obj/agentd/main.o $(LAYER_agentd)
	$(call link,$<,$(LAYER_agentd))
$(O)/vmletctl: $(O)/obj/ctl/main.o $(LAYER_ctl)
	$(call link,$<,$(LAYER_ctl))

# ---- tests ------------------------------------------------------------------
$(O)/tests/%: $(O)/obj/tests/unit/%.o $$(LAYER_$$(call module_of,$$*))
	@mkdir -p $(dir $@)
	$(call link,$<,$(LAYER_$(call module_of,$*))) -lcmocka

unit: $(UNIT_BINS)

# tests/helpers/<name>.c -> $(O)/tests/helpers/<name> (small clients the
# integration scripts use; they link the generated protobuf code only).
HELPER_SRC  := $(wildcard tests/helpers/*.c)
HELPER_BINS := $(patsubst tests/helpers/%.c,$(O)/tests/helpers/%,$(HELPER_SRC))
$(O)/tests/helpers/%: $(O)/obj/tests/helpers/%.o $(LIB_proto)
	@mkdir -p $(dir $@)
	$(call link,$<,$(LIB_proto))

# Integration scripts; lib*.sh are sourced helpers, not tests.
INTEGRATION = $(sort $(filter-out tests/integration/lib%,$(wildcard tests/integration/*.sh)))
integration: all $(HELPER_BINS)
	@O=$(O) tests/run.sh -- $(INTEGRATION) --

# Installs what is missing, builds, runs unit tests, integration tests and
# fuzz smoke runs; prints the summed result as the last line.
test: deps
	$(MAKE) all unit fuzz-build $(HELPER_BINS) guest
	@O=$(O) FUZZ_SMOKE_TIME=$(FUZZ_SMOKE_TIME) tests/run.sh $(UNIT_BINS) -- $(INTEGRATION) -- $(FUZZ_BINS)

# ASan+UBSan build of everything, then the unit tests under it.
check: deps
	$(MAKE) O=build/san SAN=1 all unit
	@O=build/san tests/run.sh $(patsubst $(O)/%,build/san/%,$(UNIT_BINS)) -- --

# ---- fuzzing (libFuzzer, clang) ----------------------------------------------
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_O    := build/fuzz
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(FUZZ_O)/%,$(FUZZ_SRC))

fuzz-build:
	$(MAKE) O=$(FUZZ_O) CC=clang SAN= CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" \
	        LDFLAGS="-fsanitize=address,undefined" fuzz-bins

fuzz-bins: $(FUZZ_BINS)

# tests/fuzz/fuzz_<module>_<subject>.c links LAYER_<module>.
$(FUZZ_O)/fuzz_%: $(O)/obj/tests/fuzz/fuzz_%.o $$(LAYER_$$(firstword $$(subst _, ,$$*)))
	$(CC) -fsanitize=fuzzer,address,undefined -o $@ $< -Wl,--start-group $(LAYER_$(firstword $(subst _, ,$*))) -Wl,--end-group $(LDLIBS)

fuzz: deps fuzz-build
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p tests/fuzz/corpus/$$n build/fuzz/new/$$n; \
	  echo "== $$n for $(FUZZ_TIME)s"; \
	  $$f -max_total_time=$(FUZZ_TIME) -max_len=65536 build/fuzz/new/$$n tests/fuzz/corpus/$$n || exit 1; done

# ---- benchmarks (not tests) ---------------------------------------------------
$(O)/bench/%: $(O)/obj/bench/%.o $$(LAYER_$$(call module_of,$$*))
	@mkdir -p $(dir $@)
	$(call link,$<,$(LAYER_$(call module_of,$*)))

bench: deps all $(BENCH_BINS)
	@O=$(O) bench/run.sh $(BENCH_BINS)

# ---- the test guest (Debian cloud kernel + static init) -------------------------
guest: deps
	OUT=$(O)/guest guest/build.sh

# ---- running it -----------------------------------------------------------------
run: all
	@O=$(O) deploy/dev-run.sh

install: all
	O=$(O) PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) deploy/install.sh

# ---- packages -------------------------------------------------------------------
DEB_PKGS := build-essential pkg-config protobuf-c-compiler libprotobuf-c-dev libnng-dev \
            libwolfssl-dev libnl-3-dev libnl-route-3-dev libnftables-dev libcryptsetup-dev \
            libseccomp-dev libcap-dev libcap-ng-dev libjansson-dev libinih-dev libcmocka-dev \
            liburing-dev clang libclang-rt-14-dev openssl iproute2 nftables procps \
            util-linux passwd coreutils python3 systemd cpio qemu-system-x86 qemu-utils

deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing:" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "deps: need root to apt-get install $$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi

clean:
	rm -rf build dev

-include $(shell find $(O) build/san build/fuzz -name '*.d' 2>/dev/null)
