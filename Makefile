# parley-xmpp. `make demo` and `make test` bring up the local Prosody and ejabberd
# (installed from apt if missing) on 127.0.0.1 and stop them afterwards if they
# started them; `make test` also installs what its tests run (scripts/deps.sh:
# etcd, prometheus and promtool, systemd-analyze).

.PHONY: demo test chaos soak bench fuzz check build man server-start server-stop

demo: ## a short live demo against the local server
	scripts/with-devserver.sh go run ./cmd/parley-xmpp demo --dev-server=$(CURDIR)/scripts/devserver.sh

test: ## gofmt, vet, staticcheck and every test (with -race) against both local servers
	scripts/deps.sh
	scripts/with-devserver.sh scripts/check.sh

chaos: ## the chaos suite alone (SEED=n repeats a run's faults)
	scripts/with-devserver.sh go test -race -count=1 -v -run 'TestChaos' ./chaos -chaos.seed=$(or $(SEED),0)

# make soak: the soak (docs/reliability.md) against one local dev server. Settings:
#   SERVER=prosody|ejabberd  which one (on its dev port; PARLEY_DEV_* pick a second instance)
#   DURATION=30m             how long the writers write
#   SEED=n                   the fault schedule (0: from the clock; the run prints it)
#   RUNTIMES=4 ROOMS=3       runtimes (a proxy and a fault schedule each) and rooms
#   FAULT_EVERY=2s           a fault on each runtime's link about this often
#   POST_EVERY=50ms          each runtime posts to each room this often
#   RESTART_EVERY=3m         a server restart about this often (0: none)
#   WEIGHTS=kill=6,cut=2,blackhole=1,latency=1,bandwidth=1,slice=1   how often each fault is drawn
#   MIN_KILLS=0              fail unless kills cut at least this many links
SOAK_FLAGS = -chaos.duration=$(or $(DURATION),30m) -chaos.seed=$(or $(SEED),0) \
	-chaos.runtimes=$(or $(RUNTIMES),4) -chaos.rooms=$(or $(ROOMS),3) \
	-chaos.fault-every=$(or $(FAULT_EVERY),2s) -chaos.post-every=$(or $(POST_EVERY),50ms) \
	-chaos.restart-every=$(or $(RESTART_EVERY),3m) -chaos.weights=$(or $(WEIGHTS),$(soak_weights)) \
	-chaos.min-kills=$(or $(MIN_KILLS),0)
soak_weights = kill=6,cut=2,blackhole=1,latency=1,bandwidth=1,slice=1
soak_server = $(or $(SERVER),prosody)
soak_port = $(if $(filter ejabberd,$(soak_server)),$(or $(PARLEY_DEV_EJABBERD_PORT),15222),$(or $(PARLEY_DEV_PROSODY_PORT),5222))

soak: ## the soak, 30 min of faults on one server (settings above): make soak SERVER=ejabberd SEED=n MIN_KILLS=1000
	PARLEY_TEST_SERVER=$(soak_server) PARLEY_XMPP_SERVICE=xmpp://127.0.0.1:$(soak_port) \
		scripts/with-devserver.sh go test -count=1 -v -timeout 0 -run 'TestChaos$$' ./chaos $(SOAK_FLAGS)

bench: ## the benchmarks against a freshly reset local Prosody, left running (docs/performance.md); ARGS="--only replay"
	scripts/devserver.sh reset prosody
	go run ./cmd/parley-xmpp bench --dev-server=$(CURDIR)/scripts/devserver.sh --transient-muc transient.parley.local $(ARGS)

fuzz: ## every fuzz target, FUZZTIME each (default 60s): make fuzz FUZZTIME=10m
	FUZZTIME=$(or $(FUZZTIME),60s) scripts/fuzz.sh

build:
	go build -buildvcs=true -o bin/parley-xmpp ./cmd/parley-xmpp

man: ## the man pages (parley-xmpp.1, parley-xmpp-post.1, ...) into man/: man -l man/parley-xmpp.1
	go run ./cmd/parley-xmpp man man

server-start: ## start the local dev server and leave it running
	scripts/devserver.sh start

server-stop:
	scripts/devserver.sh stop
