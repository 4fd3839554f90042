#!/usr/bin/env python3
"""Regenerates port-table.tsv from the hand-ranked lists below and netbase.

    python3 make-port-table.py /etc/services > port-table.tsv

The ranked lists are Portolan's own judgement of how often each port is found
open on Internet-facing and enterprise hosts, most common first, drawn from
public knowledge (IANA assignments, vendor documentation of default ports,
published summaries of Internet-wide scans).  They are not derived from
nmap-services.  After them come the remaining entries of Debian netbase's
/etc/services (IANA data): well-known ports (<1024) ascending, then registered
ports (>=1024) ascending.  A name of "-" ranks a port without naming it.
Ports in no list are ranked at run time, ascending, after the table.
"""
import sys

TCP = """
80 http
443 https
22 ssh
21 ftp
25 smtp
3389 ms-wbt-server
23 telnet
8080 http-alt
110 pop3
445 microsoft-ds
143 imap
139 netbios-ssn
53 domain
135 msrpc
3306 mysql
993 imaps
995 pop3s
587 submission
8443 https-alt
465 submissions
1723 pptp
111 sunrpc
5900 vnc
7547 cwmp
8000 http-alt
8888 http-alt
8081 http-alt
5432 postgresql
2000 cisco-sccp
5060 sip
1433 ms-sql-s
179 bgp
554 rtsp
8008 http-alt
199 smux
6379 redis
5357 wsdapi
49152 -
1025 -
5000 upnp
10000 webmin
8009 ajp13
2222 ssh-alt
631 ipp
9100 jetdirect
27017 mongodb
5985 wsman
9200 elasticsearch
11211 memcache
2049 nfs
3128 squid-http
389 ldap
636 ldaps
88 kerberos
1521 oracle
873 rsync
1080 socks
9090 http-alt
9000 cslistener
5986 wsmans
8082 http-alt
8088 http-alt
81 http-alt
4443 https-alt
9443 https-alt
10443 https-alt
8090 http-alt
8181 http-alt
3000 http-dev
49153 -
49154 -
49155 -
49156 -
49157 -
1026 -
1027 -
1028 -
1029 -
1030 -
5901 vnc-1
5902 vnc-2
5800 vnc-http
6000 x11
6001 x11-1
515 printer
548 afpovertcp
113 auth
119 nntp
1883 mqtt
8883 secure-mqtt
5672 amqp
5671 amqps
3268 globalcatldap
3269 globalcatldapssl
464 kpasswd
593 http-rpc-epmap
9389 adws
5222 xmpp-client
5269 xmpp-server
6667 ircd
1194 openvpn
8291 winbox
8728 mikrotik-api
8729 mikrotik-api-ssl
2082 cpanel
2083 cpanel-ssl
2086 whm
2087 whm-ssl
2095 webmail
2096 webmail-ssl
8880 http-alt
8800 http-alt
8001 http-alt
8002 http-alt
8010 http-alt
8083 http-alt
8084 http-alt
8085 http-alt
8086 influxdb
8089 splunkd
8180 http-alt
8889 http-alt
9080 http-alt
9081 http-alt
9091 http-alt
9092 kafka
2181 zookeeper
5601 kibana
9300 elasticsearch-transport
5984 couchdb
9042 cassandra
7000 cassandra-internode
7199 cassandra-jmx
8091 couchbase
7474 neo4j
27018 mongodb-shard
6380 redis-alt
26379 redis-sentinel
11300 beanstalkd
4369 epmd
15672 rabbitmq-mgmt
25672 rabbitmq-dist
61613 stomp
61616 activemq
8161 activemq-http
1414 ibm-mqseries
7001 weblogic
7002 weblogic-ssl
4848 glassfish-admin
8500 consul
8300 consul-rpc
8200 vault
2375 docker
2376 docker-s
6443 kubernetes-api
10250 kubelet
2379 etcd-client
2380 etcd-server
9093 alertmanager
9999 http-alt
3001 http-dev
4000 http-dev
4200 http-dev
5001 commplex-link
5555 adb
4444 krb524
7777 http-alt
1099 rmiregistry
50000 ibm-db2
50070 hadoop-namenode
9870 hadoop-namenode-http
8020 hadoop-ipc
3050 gds-db
5433 postgresql-alt
2484 oracle-tcps
3690 svn
9418 git
2401 cvspserver
1720 h323q931
5061 sip-tls
1935 rtmp
8554 rtsp-alt
37777 dahua-dvr
34567 dvr-control
102 iso-tsap
502 mbap
20000 dnp
44818 ethernet-ip
1911 niagara-fox
4911 niagara-fox-ssl
4840 opcua
2404 iec-104
9600 omron-fins
161 snmp
623 ipmi
16992 amt-soap-http
16993 amt-soap-https
5988 wbem-http
5989 wbem-https
902 vmware-auth
903 vmware-remote-console
8006 proxmox
8834 nessus
9390 openvas
4786 smart-install
830 netconf-ssh
2601 zebra
2604 ospfd
2605 bgpd
264 checkpoint-topology
18264 checkpoint-cert
5938 teamviewer
6568 anydesk
1494 citrix-ica
2598 citrix-cgp
4899 radmin-port
5631 pcanywheredata
6129 dameware
3283 net-assistant
5009 airport-admin
62078 iphone-sync
3299 sap-router
3200 sap-dispatcher
3300 sap-gateway
50013 sap-mgmt
5722 dfsr
3343 ms-cluster
47001 winrm-alt
1801 msmq
2103 msmq-rpc
2105 msmq-rpc-2
2107 msmq-mgmt
3372 msdtc
10001 -
32768 -
32769 -
32770 -
32771 -
4045 nlockmgr
6881 bittorrent
51413 transmission
6346 gnutella-svc
25565 minecraft
27015 srcds
3478 stun
5349 turns
7070 realserver
3260 iscsi-target
5666 nrpe
5667 nsca
10050 zabbix-agent
10051 zabbix-trapper
4949 munin
1311 openmanage
514 shell
513 login
512 exec
540 uucp
79 finger
70 gopher
37 time
13 daytime
7 echo
9 discard
19 chargen
17 qotd
444 snpp
427 svrloc
497 retrospect
563 nntps
6697 ircs-u
990 ftps
989 ftps-data
992 telnets
20 ftp-data
43 whois
49 tacacs
106 poppassd
783 spamd
4190 sieve
2525 smtp-alt
5044 beats
6514 syslog-tls
2003 graphite
8333 bitcoin
30303 ethereum
9001 tor-orport
9030 tor-dirport
9050 tor-socks
9051 tor-control
6060 http-alt
7080 http-alt
7443 https-alt
8060 http-alt
8069 odoo
8100 http-alt
8118 privoxy
8123 http-alt
8444 https-alt
8983 solr
9060 websphere-admin
9043 websphere-admin-ssl
11371 hkp
2121 ftp-alt
5003 filemaker
5004 avt-profile-1
5190 aol
5903 vnc-3
5904 vnc-4
6002 x11-2
6003 x11-3
6112 dtspc
7100 font-service
7937 nsrexecd
7938 lgtomapper
9101 bacula-dir
9102 bacula-fd
9103 bacula-sd
10024 amavis
10025 smtp-amavis
13722 bpjava-msvc
13782 bpcd
13783 vopied
24800 synergy
27000 flexlm
3052 apc-agent
"""

UDP = """
53 domain
123 ntp
161 snmp
137 netbios-ns
138 netbios-dgm
67 bootps
68 bootpc
500 isakmp
1900 ssdp
5353 mdns
69 tftp
4500 ipsec-nat-t
514 syslog
520 route
1434 ms-sql-m
111 sunrpc
2049 nfs
162 snmp-trap
443 https
445 microsoft-ds
135 msrpc
139 netbios-ssn
631 ipp
1701 l2tp
1812 radius
1813 radius-acct
5060 sip
3478 stun
3702 ws-discovery
5355 llmnr
11211 memcache
1194 openvpn
51820 wireguard
88 kerberos
464 kpasswd
389 ldap
623 asf-rmcp
177 xdmcp
1604 citrix-icabrowser
5683 coap
47808 bacnet
10001 ubiquiti-discovery
49152 -
49153 -
49154 -
1645 datametrics
1646 sa-msg-port
5061 sip-tls
19 chargen
7 echo
13 daytime
17 qotd
37 time
9 discard
49 tacacs
17185 wdbrpc
20000 dnp
44818 ethernet-ip
2222 ethernet-ip-io
27015 srcds
3074 xbox-live
3544 teredo
3283 net-assistant
5351 nat-pmp
5632 pcanywherestat
6881 bittorrent
9987 teamspeak
5004 rtp
5005 rtcp
8125 statsd
4789 vxlan
8472 otv
6081 geneve
1985 hsrp
2123 gtp-c
2152 gtp-u
427 svrloc
1719 h323gatekeeper
3389 ms-wbt-server
853 domain-s
5684 coaps
2727 mgcp-callagent
2427 mgcp-gateway
19132 minecraft-bedrock
64738 mumble
5246 capwap-control
5247 capwap-data
3799 radius-dynauth
2055 netflow
6343 sflow
4739 ipfix
517 talk
518 ntalk
513 who
512 biff
546 dhcpv6-client
547 dhcpv6-server
1023 -
1024 -
1025 -
1026 -
1027 -
1028 -
1029 -
1030 -
32768 -
32769 -
32770 -
32771 -
5000 -
5050 -
"""

SCTP = """
80 http
443 https
2905 m3ua
2904 m2ua
3868 diameter
36412 s1-control
38412 ngap
36422 x2-control
2944 megaco-h248
2945 h248-binary
3565 m2pa
14001 sua
29118 sgsap
29168 sbcap
3863 asap-sctp
3864 asap-sctp-tls
3097 itu-bicc-stc
5060 sip
5061 sip-tls
9899 sctp-tunneling
1167 cisco-ipsla
4739 ipfix
4740 ipfixs
6704 frc-hp
6705 frc-mp
6706 frc-lp
20049 nfsrdma
5672 amqp
22 ssh
21 ftp
179 bgp
"""


def parse_ranked(text, proto):
    out, seen = [], set()
    for line in text.strip().splitlines():
        port, name = line.split()
        port = int(port)
        if port in seen:
            sys.exit(f"duplicate {port}/{proto} in the ranked list")
        seen.add(port)
        out.append((port, name))
    return out


def netbase(path):
    entries = {}
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].split()
        if len(line) < 2:
            continue
        port, proto = line[1].split("/")
        if proto in ("tcp", "udp", "sctp"):
            entries.setdefault((proto, int(port)), line[0])
    return entries


def main():
    services = netbase(sys.argv[1] if len(sys.argv) > 1 else "/etc/services")
    print("# Portolan port table: service name, port/protocol, rank (1 = most often open).")
    for line in __doc__.strip().splitlines()[4:]:
        print("#" + (" " + line if line else ""))
    print("# Generated by make-port-table.py; edit the lists there, not this file.")
    print("#")
    print("# name\tport/proto\trank")
    for proto, text in (("tcp", TCP), ("udp", UDP), ("sctp", SCTP)):
        ranked = parse_ranked(text, proto)
        listed = {port for port, _ in ranked}
        rest = sorted(port for (p, port) in services if p == proto and port not in listed)
        rest = [port for port in rest if port < 1024] + [port for port in rest if port >= 1024]
        rows = ranked + [(port, services[(proto, port)]) for port in rest]
        for rank, (port, name) in enumerate(rows, start=1):
            print(f"{name}\t{port}/{proto}\t{rank}")


main()
