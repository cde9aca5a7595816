static int test_tokenizer_placeholder(void) { return 0; }
static const lf_test tests_tokenizer[] = {{"tokenizer/placeholder", test_tokenizer_placeholder}};
