# Test certificates made at test time (sourced, not run). make_certs DIR
# writes, with EC P-256 keys:
#   ca.pem/ca.key            the test CA ("Tern Test CA")
#   server.pem/.key          CN=localhost, SAN localhost and 127.0.0.1, serial 0x1001
#   server2.pem/.key         the same names, O=Reloaded, serial 0x2002 (reload tests)
#   client.pem/.key          CN=lab-system, from the CA (the allowed client)
#   intruder.pem/.key        CN=intruder, from the CA (a subject not allowed)
#   other-ca.pem/.key        another CA, and rogue.pem/.key: CN=lab-system from it
make_certs() {
    d=$1
    mkdir -p "$d"
    (
        cd "$d" || exit 1
        newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
        ca() { # name subject
            newkey "$1.key"
            openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "$2" \
                -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        }
        leaf() { # name subject ca serial ext
            newkey "$1.key"
            openssl req -new -key "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
            printf '%s\n' "$5" >"$1.ext"
            openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -set_serial "$4" -days 2 \
                -extfile "$1.ext" -out "$1.pem" 2>/dev/null
        }
        srv="subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
        cli="extendedKeyUsage=clientAuth"
        ca ca "/O=Tern Tests/CN=Tern Test CA"
        ca other-ca "/O=Elsewhere/CN=Other CA"
        leaf server "/O=Tern Tests/CN=localhost" ca 0x1001 "$srv"
        leaf server2 "/O=Reloaded/CN=localhost" ca 0x2002 "$srv"
        leaf client "/O=Lab/CN=lab-system" ca 0x3001 "$cli"
        leaf intruder "/O=Lab/CN=intruder" ca 0x3002 "$cli"
        leaf rogue "/O=Lab/CN=lab-system" other-ca 0x3003 "$cli"
    )
}
