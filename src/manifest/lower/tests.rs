use super::step::is_symbolic_mode;

#[test]
fn symbolic_modes() {
    assert!(is_symbolic_mode("u+x,go-w"));
    assert!(is_symbolic_mode("a=rX"));
    assert!(!is_symbolic_mode("rwx"));
}
