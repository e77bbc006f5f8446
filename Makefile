# Two commands set everything up on a fresh machine:
#   make demo   - create .venv, install, write real sample photos, index and search them (offline)
#   make test   - create .venv, install, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch and torchvision first: these exact versions lie on this machine's disk.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[all,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/imgemb samples demo_out/photos
	$(VENV)/bin/imgemb index demo_out/photos --store faiss:demo_out/index --model timm:efficientnet_lite0 --device cpu
	$(VENV)/bin/imgemb search --image demo_out/photos/copies/chelsea-crop.jpg --store faiss:demo_out/index -k 3 --device cpu
	@echo "See the results in a browser: $(VENV)/bin/imgemb serve --store faiss:demo_out/index --device cpu   (then open http://127.0.0.1:8000/)"

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf demo_out .pytest_cache .mypy_cache .ruff_cache
