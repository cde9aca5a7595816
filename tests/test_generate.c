static int test_generate_placeholder(void) { return 0; }
static const lf_test tests_generate[] = {{"generate/placeholder", test_generate_placeholder}};
