# guest image build (owned by the guest image work)
guest:
	@echo "guest image not built yet"
