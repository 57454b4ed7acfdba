// APIGateway
