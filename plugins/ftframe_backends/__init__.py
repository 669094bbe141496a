"""First-party local training backends on the Lightning engine: lora, qlora, full, dpo."""
