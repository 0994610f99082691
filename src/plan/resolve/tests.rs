use super::*;

#[test]
fn exposed_ports_read_as_buildkit_does() {
    let ports = |spec| expose_ports(spec).unwrap();
    assert_eq!(ports("80"), ["80/tcp"]);
    assert_eq!(ports("53/UDP"), ["53/udp"]);
    assert_eq!(ports("8000-8002/tcp"), ["8000/tcp", "8001/tcp", "8002/tcp"]);
    assert_eq!(ports("127.0.0.1:8080:80"), ["80/tcp"]);
    assert_eq!(ports("8080:80/sctp"), ["80/sctp"]);
    assert!(expose_ports("http").is_err());
    assert!(expose_ports("80/icmp").is_err());
    assert!(expose_ports("90-80").is_err());
    assert!(expose_ports("70000").is_err());
}

#[test]
fn paths_join_and_clean() {
    assert_eq!(join_path("/", "src"), "/src");
    assert_eq!(join_path("/src", "../app/./bin"), "/app/bin");
    assert_eq!(join_path("/src", "/abs"), "/abs");
    assert_eq!(join_path("/", ".."), "/");
    assert_eq!(dest_path("/src", "./"), "/src/");
    assert_eq!(dest_path("/src", "."), "/src/");
    assert_eq!(dest_path("/", "app/"), "/app/");
    assert_eq!(dest_path("/src", "a.txt"), "/src/a.txt");
    assert_eq!(dest_path("/", "/"), "/");
}
